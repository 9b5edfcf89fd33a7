"""`synth`: the embedded default benchmark, a generated fictional world that no pretrained model knows.

People and organisations with invented names, living and based in real cities (option `cities: invented` for
made-up city names too); each entity has a short paragraph (its title is the
entity's name). Questions are HotpotQA-like: bridge (two hops through a relation) and comparison (two dates).
Each pool holds the two supporting paragraphs plus distractor paragraphs about look-alike entities (same
surname, same company stem, same city) and random others.

Each split (train, dev, test) is drawn from a world of its own: people and companies, their surnames and company
stems, are made for that split alone, so no test pool shares a sentence or a named entity with any training pool,
and a trained memory cannot have seen the test evidence. Only the city names (the answers' vocabulary, as in a
real benchmark) are shared. A split's world grows with its question count (`people_per_question`), so bridge
questions (one per person or company) never run out; `bridge_fraction` sets the question mix (HotpotQA's is about
4 bridge : 1 comparison, the default 0.8). `single_fraction` (default 0) adds one-hop lookups ("In which city
was X born?", type `single`, one gold sentence), drawn before that split: a share of questions a very small reader
can answer from one fact (the `ci` profile uses it; README, "Profiles"). Records are emitted in the HotpotQA hub schema and
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


def pick_cities(seed: int, n_cities: int, cities: str = "real") -> list[str]:
    """The world's city names (shared by every split): real one-token names, or invented ones."""
    rng = random.Random(seed)
    if cities == "real":
        if n_cities > len(_REAL_CITIES):
            raise ValueError(f"synth: n_cities={n_cities} but only {len(_REAL_CITIES)} real city names; "
                             "lower n_cities or use cities: invented")
        return rng.sample(_REAL_CITIES, n_cities)
    if cities != "invented":
        raise ValueError(f"synth: cities must be 'real' or 'invented', got {cities!r}")
    names: list[str] = []
    while len(names) < n_cities:
        c = _word(rng, rng.choice([1, 2])) + rng.choice(_CITY_SUFFIXES)
        if c not in names:
            names.append(c)
    return names


def _fresh_words(rng: random.Random, n: int, syllables: list[int], taken: set[str]) -> list[str]:
    """n new words, none in `taken` (which they join), sorted."""
    out: set[str] = set()
    while len(out) < n:
        w = _word(rng, rng.choice(syllables))
        if w not in taken and w not in out:
            out.add(w)
    taken |= out
    return sorted(out)


def build_world(seed, n_people: int, n_orgs: int, cities: list[str], taken: set[str] | None = None) -> World:
    """A seeded fictional world; look-alike names are built in (shared surnames, shared company stems). Words in
    `taken` (surnames, first names, company stems of other worlds) are never used, and this world's join them."""
    rng = random.Random(seed)
    taken = set() if taken is None else taken
    surnames = _fresh_words(rng, max(4, n_people // 3), [2, 3], taken)
    first_names = _fresh_words(rng, max(8, n_people // 2), [2], taken)
    people, seen = [], set()
    while len(people) < n_people:
        name = f"{rng.choice(first_names)} {rng.choice(surnames)}"  # ~3 people per surname: look-alikes
        if name in seen:
            continue
        seen.add(name)
        people.append(Person(name, rng.randint(1820, 1990), rng.choice(cities), rng.choice(_PROFESSIONS)))
    stems = _fresh_words(rng, max(2, n_orgs // 3), [2], taken)
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


def split_worlds(params: dict, sizes: dict[str, int]) -> dict[str, World]:
    """One world per split, with disjoint names (train first, then dev, then test: a split's world does not change
    when a later split's size does). Each holds at least `people_per_question` people per question of its split."""
    seed = params.get("seed", 0)
    cities = pick_cities(seed, params.get("n_cities", 40), params.get("cities", "real"))
    per_q = params.get("people_per_question", 1.0)
    taken: set[str] = set()
    worlds = {}
    for s in ("train", "dev", "test"):
        n_people = max(params.get("n_people", 300), int(per_q * sizes[s] + 0.5))
        n_orgs = max(params.get("n_orgs", 120), int(0.4 * n_people + 0.5))
        worlds[s] = build_world(f"{seed}-{s}", n_people, n_orgs, cities, taken)
    return worlds


def _lookalikes(world: World, name: str) -> list[str]:
    if isinstance(world.entity(name), Person):
        last = name.split(" ", 1)[1]
        return [p.name for p in world.people if p.name != name and p.name.endswith(" " + last)]
    stem = name.split(" ", 1)[0]
    return [o.name for o in world.orgs if o.name != name and o.name.startswith(stem + " ")]


def _question(world: World, rng: random.Random, bridge_fraction: float,
              single: bool = False) -> tuple[str, str, str, list[tuple[str, int]]]:
    """One question: (type, question, answer, supporting facts as (title, sentence id)).

    Comparison questions ask for an attribute of the winner, not the winner's name, so the answer never appears
    in the question and a closed-book guess cannot score by picking one of two names. `single`: a one-hop lookup
    (type `single`, one gold sentence), as in NQ or TriviaQA."""
    if single:
        if rng.random() < 0.5:
            p = rng.choice(world.people)
            return ("single", f"In which city was {p.name} born?", p.city, [(p.name, 2)])
        org = rng.choice(world.orgs)
        return ("single", f"In which city is {org.name} headquartered?", org.city, [(org.name, 2)])
    if rng.random() < bridge_fraction:
        kind = rng.choice(["bridge_employer_city", "bridge_founder_city"])
    else:
        kind = rng.choice(["compare_born", "compare_founded"])
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
            return _question(world, rng, bridge_fraction)
        older = a if a.born < b.born else b
        q = f"In which city was the older of {a.name} and {b.name} born?"
        return ("comparison", q, older.city, [(a.name, 1), (b.name, 1), (older.name, 2)])
    a, b = rng.sample(world.orgs, 2)
    if a.founded == b.founded or a.city == b.city:
        return _question(world, rng, bridge_fraction)
    older = a if a.founded < b.founded else b
    q = f"In which city is the older company, {a.name} or {b.name}, headquartered?"
    return ("comparison", q, older.city, [(a.name, 1), (b.name, 1), (older.name, 2)])


def generate_records(params: dict) -> Iterator[tuple[str, dict]]:
    """Yield (location, HotpotQA-schema record) for the configured split of the synth benchmark."""
    seed = params.get("seed", 0)
    sizes = {s: params.get(f"n_{s}", d) for s, d in (("train", 200), ("dev", 50), ("test", 100))}
    split = params.get("split", "test")
    if split not in sizes:
        raise ValueError(f"synth split must be one of {sorted(sizes)}, got {split!r}")
    bridge_fraction = params.get("bridge_fraction", 0.8)
    single_fraction = params.get("single_fraction", 0.0)
    for key, value in (("bridge_fraction", bridge_fraction), ("single_fraction", single_fraction)):
        if not 0 <= value <= 1:
            raise ValueError(f"synth {key} must be in [0, 1], got {value!r}")
    world = split_worlds(params, sizes)[split]
    n_paragraphs = params.get("paragraphs_per_pool", 9)
    rng = random.Random(f"{seed}-{split}-questions")
    everyone = [p.name for p in world.people] + [o.name for o in world.orgs]
    seen: set[str] = set()
    made, tries = 0, 0
    while made < sizes[split]:
        # the slot's type is drawn once (duplicates redraw within it); with no single-hop share, no draw for it
        single = bool(single_fraction) and rng.random() < single_fraction
        bridge = rng.random() < bridge_fraction
        while True:
            tries += 1
            if tries > 50 * sizes[split] + 1000:
                raise ValueError(f"synth(seed={seed}, split={split}): could not draw {sizes[split]} distinct "
                                 f"questions from a world of {len(world.people)} people; raise people_per_question")
            qtype, question, answer, support = _question(world, rng, 1.0 if bridge else 0.0, single)
            if question not in seen:
                break
        seen.add(question)
        made += 1
        pool_rng = random.Random(f"{seed}-{split}-{made}")
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
            "id": f"synth-{seed}-{split}-{made:05d}",
            "question": question,
            "answer": answer,
            "type": qtype,
            "level": "synthetic",
            "supporting_facts": {"title": [t for t, _ in support], "sent_id": [i for _, i in support]},
            "context": {"title": titles, "sentences": [world.entity(t).paragraph() for t in titles]},
        }
        yield f"synth(seed={seed}, split={split}): question {made}", record
