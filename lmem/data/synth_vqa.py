"""`synth-vqa`: a generated image benchmark, the offline proof that the multimodal path learns.

Every image is a rendered tile: 1 to 4 copies of one shape in one colour on a light background, with a title naming
its (invented) owner and a caption that says nothing about what is drawn. Questions follow WebQA's categories and
ask what only the image shows: `color` (What color are the shapes on Marlow Brenner's tile?), `shape`, `number`
(How many ...) and `YesNo` (Are the shapes on ... blue?). Each pool holds the gold image, two look-alikes (an owner
of the same surname whose tile differs in the asked attribute) and random others.

Records are emitted in the official WebQA schema (`Q`, `A`, `Qcate`, `split`, `img_posFacts`, `img_negFacts` with
`image_id`, `title`, `caption`, `url`) and converted by the WebQA loader, so `synth-vqa` runs exactly the real
benchmark's code path. An image id encodes its scene (`circle-red-3-1234`), and the image is rendered on demand
(`render`), deterministically, so no image files are written or shipped.
"""

from __future__ import annotations

import math
import random
from typing import Iterator

from PIL import Image, ImageDraw

from lmem.data.synth import _word

COLORS = {"red": (220, 30, 30), "blue": (30, 70, 220), "green": (30, 160, 50), "yellow": (235, 200, 20),
          "purple": (130, 40, 170), "orange": (245, 130, 20), "black": (20, 20, 20), "pink": (240, 120, 180)}
SHAPES = ["circle", "square", "triangle", "star", "diamond", "hexagon"]
COUNTS = [1, 2, 3, 4]
CATEGORIES = ["color", "shape", "number", "YesNo"]
IMAGE_SIZE = 128
PREFIX = "synth-vqa"


def scene_id(shape: str, color: str, count: int, layout: int) -> str:
    return f"{shape}-{color}-{count}-{layout}"


def parse_scene(image_id: str) -> tuple[str, str, int, int]:
    try:
        shape, color, count, layout = image_id.split("-")
        if shape not in SHAPES or color not in COLORS or int(count) not in COUNTS:
            raise ValueError
        return shape, color, int(count), int(layout)
    except ValueError:
        raise ValueError(f"{image_id!r} is not a synth-vqa image id (shape-color-count-layout, e.g. "
                         f"circle-red-3-17)") from None


def _polygon(shape: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    if shape == "square":
        pts = [(math.pi / 4 + i * math.pi / 2) for i in range(4)]
        return [(cx + r * math.cos(a + rot), cy + r * math.sin(a + rot)) for a in pts]
    if shape == "triangle":
        angles = [-math.pi / 2 + i * 2 * math.pi / 3 for i in range(3)]
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]
    if shape == "diamond":
        return [(cx, cy - r), (cx + 0.65 * r, cy), (cx, cy + r), (cx - 0.65 * r, cy)]
    if shape == "hexagon":
        return [(cx + r * math.cos(i * math.pi / 3 + rot), cy + r * math.sin(i * math.pi / 3 + rot)) for i in range(6)]
    if shape == "star":
        pts = []
        for i in range(10):
            rr = r if i % 2 == 0 else 0.45 * r
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        return pts
    raise ValueError(shape)


def render(image_id: str, size: int = IMAGE_SIZE):
    """The tile of this id (PIL RGB image), the same on every call and machine."""
    shape, color, count, layout = parse_scene(image_id)
    rng = random.Random(f"{PREFIX}-{layout}")
    bg = tuple(235 + rng.randrange(20) for _ in range(3))
    img = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(img)
    cells = rng.sample(range(4), count)  # one shape per quadrant: never overlapping, easy to count
    half = size / 2
    for c in cells:
        r = half * (0.26 + 0.12 * rng.random())
        cx = (c % 2) * half + half / 2 + rng.uniform(-0.12, 0.12) * half
        cy = (c // 2) * half + half / 2 + rng.uniform(-0.12, 0.12) * half
        fill = COLORS[color]
        if shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(_polygon(shape, cx, cy, r, rng.uniform(0, 0.3)), fill=fill)
    return img


def _question(qcate: str, owner: str, scene: tuple[str, str, int], rng: random.Random) -> tuple[str, str]:
    shape, color, count = scene
    tile = f"{owner}'s tile"
    if qcate == "color":
        return f"What color are the shapes on {tile}?", color
    if qcate == "shape":
        return f"What shape are the figures on {tile}?", shape
    if qcate == "number":
        return f"How many shapes are on {tile}?", str(count)
    asked = color if rng.random() < 0.5 else rng.choice([c for c in COLORS if c != color])
    return f"Are the shapes on {tile} {asked}?", "yes" if asked == color else "no"


def _other(value, choices, rng):
    return rng.choice([c for c in choices if c != value])


def _lookalike(scene: tuple[str, str, int], qcate: str, rng: random.Random) -> tuple[str, str, int]:
    """A scene that differs from `scene` in the attribute the question asks about (and maybe in more)."""
    shape, color, count = scene
    if qcate in ("color", "YesNo"):
        color = _other(color, list(COLORS), rng)
    elif qcate == "shape":
        shape = _other(shape, SHAPES, rng)
    else:
        count = _other(count, COUNTS, rng)
    return shape, color, count


def generate_records(params: dict) -> Iterator[tuple[str, dict]]:
    """Yield (location, WebQA-schema record) for the configured split."""
    seed = params.get("seed", 0)
    sizes = {s: params.get(f"n_{s}", d) for s, d in (("train", 600), ("dev", 50), ("test", 100))}
    split = params.get("split", "test")
    if split not in sizes:
        raise ValueError(f"synth_vqa split must be one of {sorted(sizes)}, got {split!r}")
    pool_size = params.get("images_per_pool", 6)
    rng = random.Random(f"{PREFIX}-{seed}")
    surnames = list(dict.fromkeys(_word(rng, 2) for _ in range(400)))
    firsts = list(dict.fromkeys(_word(rng, 2) for _ in range(200)))
    layout = 0
    seen: set[str] = set()
    for s in ("train", "dev", "test"):  # generated in a fixed order so splits never share an owner's question
        made = 0
        while made < sizes[s]:
            surname = rng.choice(surnames)
            owners = rng.sample(firsts, 3)
            qcate = CATEGORIES[made % len(CATEGORIES)]
            scene = (rng.choice(SHAPES), rng.choice(list(COLORS)), rng.choice(COUNTS))
            question, answer = _question(qcate, f"{owners[0]} {surname}", scene, rng)
            if question in seen:
                continue
            seen.add(question)
            made += 1
            images = [(f"{owners[0]} {surname}", scene, True)]
            images += [(f"{o} {surname}", _lookalike(scene, qcate, rng), False) for o in owners[1:]]
            while len(images) < pool_size:
                other = (f"{rng.choice(firsts)} {rng.choice(surnames)}",
                         (rng.choice(SHAPES), rng.choice(list(COLORS)), rng.choice(COUNTS)), False)
                if other[0] not in {i[0] for i in images}:
                    images.append(other)
            rng.shuffle(images)
            facts = {"img_posFacts": [], "img_negFacts": []}
            for owner, (shape, color, count), gold in images:
                layout += 1
                image_id = scene_id(shape, color, count, seed * 10_000_000 + layout)
                fact = {"image_id": image_id, "title": f"{owner}'s tile",
                        "caption": f"A painted tile from the {owner.split()[1]} family collection.",
                        "url": f"{PREFIX}://{image_id}"}
                facts["img_posFacts" if gold else "img_negFacts"].append(fact)
            if s != split:
                continue
            guid = f"{PREFIX}-{seed}-{s}-{made:05d}"
            record = {"Guid": guid, "Q": f'"{question}"', "A": [f'"{answer}"'], "Qcate": qcate, "split": s,
                      "txt_posFacts": [], "txt_negFacts": [], **facts}
            yield f"synth_vqa(seed={seed}, split={s}): question {made}", record
