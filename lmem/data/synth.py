"""`synth`: the embedded default benchmark, a generated fictional world that no pretrained model knows.

People and organisations with invented names, living and based in real cities (option `cities: invented` for
made-up city names too); each entity has a short paragraph (its title is the
entity's name). Questions are HotpotQA-like: bridge (two hops through a relation) and comparison (two dates).
Each pool holds the two supporting paragraphs plus distractor paragraphs about look-alike entities (same
surname, same company stem, same city) and random others. Records are emitted in the HotpotQA hub schema and
converted by the HotpotQA loader, so `synth` exercises exactly the code path of the real benchmark.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Iterator

_ONSETS = ["b", "br", "c", "d", "dr", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "r", "s", "st", "t",
           "th", "v", "w", "z", "sh", "tr"]
_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "ia"]
_CODAS = ["", "", "", "n", "r", "l", "s", "m", "nd"]
_PROFESSIONS = ["architect", "botanist", "cartographer", "composer", "engineer", "geologist", "glassblower",
                "historian", "jeweller", "linguist", "painter", "pilot", "sculptor", "surgeon", "weaver"]
_INDUSTRIES = {"Instruments": "instrument maker", "Logistics": "shipping company", "Textiles": "textile mill",
               "Foundry": "metal foundry", "Press": "publishing house", "Optics": "lens maker",
               "Brewery": "brewery", "Shipyards": "shipbuilder", "Pharmacy": "drug maker", "Aerials": "airline"}
_CITY_SUFFIXES = ["port", "ford", "holm", "mere", "wick", "vale", "stead", "burg", "haven", "moor"]
# Real city names, each one token (with its leading space) for SmolLM2/Llama-style BPE vocabularies: answers are
# words a generator can write, as in the real benchmarks, while the facts tying people and companies to them are
# invented (so no pretrained model knows them). `cities: invented` gives made-up multi-token names instead.
_REAL_CITIES = ["Amsterdam", "Athens", "Austin", "Beijing", "Berlin", "Boston", "Brussels", "Budapest", "Cairo",
                "Calgary", "Cambridge", "Chicago", "Cologne", "Copenhagen", "Dallas", "Delhi", "Denver", "Detroit",
                "Edinburgh", "Frankfurt", "Geneva", "Glasgow", "Hamburg", "Istanbul", "Leeds", "Lima", "London",
                "Lyon", "Madrid", "Manila", "Melbourne", "Miami", "Milan", "Montreal", "Moscow", "Mumbai", "Nairobi",
                "Naples", "Oslo", "Oxford", "Paris", "Portland", "Quebec", "Rome", "Seattle", "Seoul", "Singapore",
                "Stockholm", "Tokyo", "Toronto", "Vancouver", "Venice", "Vienna"]


def _word(rng: random.Random, syllables: int) -> str:
    syllable = (rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables))
    return "".join(syllable).capitalize()


@dataclass
class Person:
    name: str
    born: int
    city: str
    profession: str
    employer: str = ""

    def paragraph(self) -> list[str]:
        return [f"{self.name} is a {self.profession}.",
                f"{self.name} was born in {self.born}.",
                f"{self.name} was born in the city of {self.city}.",
                f"{self.name} works for {self.employer}."]


@dataclass
class Org:
    name: str
    founded: int
    city: str
    kind: str
    founder: str = ""
    staff: list[str] = field(default_factory=list)

    def paragraph(self) -> list[str]:
        return [f"{self.name} is a {self.kind}.",
                f"{self.name} was founded in {self.founded}.",
                f"{self.name} is headquartered in {self.city}.",
                f"{self.name} was founded by {self.founder}."]


@dataclass
class World:
    people: list[Person]
    orgs: list[Org]
    cities: list[str]

    def entity(self, name: str) -> Person | Org:
        return self._index[name]

    def __post_init__(self) -> None:
        self._index = {p.name: p for p in self.people} | {o.name: o for o in self.orgs}


def build_world(seed: int, n_people: int, n_orgs: int, n_cities: int, cities: str = "real") -> World:
    """A seeded fictional world; look-alike names are built in (shared surnames, shared company stems)."""
    rng = random.Random(seed)
    if cities == "real":
        if n_cities > len(_REAL_CITIES):
            raise ValueError(f"synth: n_cities={n_cities} but only {len(_REAL_CITIES)} real city names; "
                             "lower n_cities or use cities: invented")
        names = rng.sample(_REAL_CITIES, n_cities)
    elif cities == "invented":
        names = []
        while len(names) < n_cities:
            c = _word(rng, rng.choice([1, 2])) + rng.choice(_CITY_SUFFIXES)
            if c not in names:
                names.append(c)
    else:
        raise ValueError(f"synth: cities must be 'real' or 'invented', got {cities!r}")
    cities = names
    surnames = sorted({_word(rng, rng.choice([2, 3])) for _ in range(max(4, n_people // 3))})
    people, seen = [], set()
    while len(people) < n_people:
        name = f"{_word(rng, 2)} {rng.choice(surnames)}"  # ~3 people per surname: look-alikes
        if name in seen:
            continue
        seen.add(name)
        people.append(Person(name, rng.randint(1820, 1990), rng.choice(cities), rng.choice(_PROFESSIONS)))
    stems = sorted({_word(rng, 2) for _ in range(max(2, n_orgs // 3))})
    orgs, seen = [], set()
    while len(orgs) < n_orgs:
        suffix = rng.choice(sorted(_INDUSTRIES))
        name = f"{rng.choice(stems)} {suffix}"  # ~3 companies per stem: look-alikes
        if name in seen:
            continue
        seen.add(name)
        founder = rng.choice(people)
        orgs.append(Org(name, rng.randint(1850, 2010), rng.choice(cities), _INDUSTRIES[suffix], founder.name))
    for p in people:
        p.employer = rng.choice(orgs).name
    return World(people, orgs, cities)


def _lookalikes(world: World, name: str) -> list[str]:
    if isinstance(world.entity(name), Person):
        last = name.split(" ", 1)[1]
        return [p.name for p in world.people if p.name != name and p.name.endswith(" " + last)]
    stem = name.split(" ", 1)[0]
    return [o.name for o in world.orgs if o.name != name and o.name.startswith(stem + " ")]


def _question(world: World, rng: random.Random) -> tuple[str, str, str, list[tuple[str, int]]]:
    """One question: (type, question, answer, supporting facts as (title, sentence id)).

    Comparison questions ask for an attribute of the winner, not the winner's name, so the answer never appears
    in the question and a closed-book guess cannot score by picking one of two names."""
    kind = rng.choice(["bridge_employer_city", "bridge_founder_city", "compare_born", "compare_founded"])
    if kind == "bridge_employer_city":
        p = rng.choice(world.people)
        org = world.entity(p.employer)
        return ("bridge", f"In which city is the headquarters of the company that {p.name} works for?",
                org.city, [(p.name, 3), (org.name, 2)])
    if kind == "bridge_founder_city":
        org = rng.choice(world.orgs)
        f = world.entity(org.founder)
        return ("bridge", f"In which city was the founder of {org.name} born?", f.city, [(org.name, 3), (f.name, 2)])
    if kind == "compare_born":
        a, b = rng.sample(world.people, 2)
        if a.born == b.born or a.city == b.city:
            return _question(world, rng)
        older = a if a.born < b.born else b
        q = f"In which city was the older of {a.name} and {b.name} born?"
        return ("comparison", q, older.city, [(a.name, 1), (b.name, 1), (older.name, 2)])
    a, b = rng.sample(world.orgs, 2)
    if a.founded == b.founded or a.city == b.city:
        return _question(world, rng)
    older = a if a.founded < b.founded else b
    q = f"In which city is the older company, {a.name} or {b.name}, headquartered?"
    return ("comparison", q, older.city, [(a.name, 1), (b.name, 1), (older.name, 2)])


def generate_records(params: dict) -> Iterator[tuple[str, dict]]:
    """Yield (location, HotpotQA-schema record) for the configured split of the synth benchmark."""
    seed = params.get("seed", 0)
    world = build_world(seed, params.get("n_people", 300), params.get("n_orgs", 120), params.get("n_cities", 40),
                        params.get("cities", "real"))
    sizes = {s: params.get(f"n_{s}", d) for s, d in (("train", 200), ("dev", 50), ("test", 100))}
    split = params.get("split", "test")
    if split not in sizes:
        raise ValueError(f"synth split must be one of {sorted(sizes)}, got {split!r}")
    n_paragraphs = params.get("paragraphs_per_pool", 9)
    rng = random.Random(seed + 1)
    everyone = [p.name for p in world.people] + [o.name for o in world.orgs]
    seen: set[str] = set()
    for s in ("train", "dev", "test"):  # generated in a fixed order so splits never share a question
        made = 0
        while made < sizes[s]:
            qtype, question, answer, support = _question(world, rng)
            if question in seen:
                continue
            seen.add(question)
            made += 1
            if s != split:
                continue
            pool_rng = random.Random(f"{seed}-{s}-{made}")  # pools draw apart from questions: splits stay fixed
            gold_titles = list(dict.fromkeys(t for t, _ in support))
            titles = list(gold_titles)
            for t in gold_titles:
                titles += pool_rng.sample(_lookalikes(world, t), min(2, len(_lookalikes(world, t))))
            titles = list(dict.fromkeys(titles))
            while len(titles) < n_paragraphs:
                t = pool_rng.choice(everyone)
                if t not in titles:
                    titles.append(t)
            pool_rng.shuffle(titles)
            record = {
                "id": f"synth-{seed}-{s}-{made:05d}",
                "question": question,
                "answer": answer,
                "type": qtype,
                "level": "synthetic",
                "supporting_facts": {"title": [t for t, _ in support], "sent_id": [i for _, i in support]},
                "context": {"title": titles, "sentences": [world.entity(t).paragraph() for t in titles]},
            }
            yield f"synth(seed={seed}, split={s}): question {made}", record
