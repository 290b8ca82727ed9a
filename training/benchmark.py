"""The pixplan benchmark: abstract-goal editing tasks on synthetic advertisements, with typed checklists.

Each task is an ad (`pixplan.training.ads`) composed from a real photograph (scikit-image's bundled photos)
with a rendered background, a headline (the product name), a slogan, a price tag, a badge and a logo text, in
one of several layouts, sizes and type sizes; an abstract goal from one of twelve families
(`pixplan.training.families`), phrased in several ways; a checklist of natural-language requirements, each
with a typed pixel check; and the ground truth an oracle needs: the intended edits as tool calls with regions
and arguments.

Everything is generated deterministically from a seed, so the benchmark is not committed: `bundled_tasks()`
writes it once into a cache folder (`$PIXPLAN_CACHE` or `~/.cache/pixplan`) and reads it from there.
`pixplan tasks generate --out DIR` writes the same files anywhere, in the task format of
`pixplan.training.tasks`.

    python -m pixplan.training.benchmark   # prints a summary of the bundled benchmark
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixplan.graph.checks import ChecklistItem
from pixplan.tools.store import cache_dir
from pixplan.training.ads import LAYOUTS, hex_rgb, layout_boxes, render_ad
from pixplan.training.families import FAMILIES, Family
from pixplan.training.tasks import Task, load_tasks, save_tasks

#: Bump when generation changes: the cache folder is keyed by it.
BENCHMARK_VERSION = "v3"
DEFAULT_SEED = 0
DEFAULT_PER_FAMILY = 25
SPLIT_SIZES = {"test": 4, "val": 4}  # per family; the rest is train

# What the ads advertise, and the pieces a spec is drawn from.
PRODUCTS = {
    "coffee": {
        "names": ["Morning Brew", "Crema Cafe", "Bean House"],
        "slogans": ["Taste the difference", "Your daily cup"],
        "prices": ["$4.99", "$3.50"],
    },
    "rocket": {
        "names": ["Orbit Tours", "Launch Day"],
        "slogans": ["Book your seat", "Fly higher"],
        "prices": ["$999", "$1299"],
    },
    "chelsea": {
        "names": ["Whisker Treats", "Purr Deli"],
        "slogans": ["Cats love it", "Tasty every time"],
        "prices": ["$6.49", "$5.99"],
    },
    "astronaut": {
        "names": ["Space Camp", "Star Academy"],
        "slogans": ["Join the mission", "Train like a pro"],
        "prices": ["$129", "$149"],
    },
    "motorcycle": {
        "names": ["Moto Works", "Ride Club"],
        "slogans": ["Built to ride", "Feel the road"],
        "prices": ["$8990", "$7490"],
    },
    "camera": {
        "names": ["Photo Lab", "Frame Studio"],
        "slogans": ["Capture every moment", "Shoot like a pro"],
        "prices": ["$349", "$299"],
    },
}
BRANDS = ["ACME CO", "NORTHWIND", "BLUEBIRD", "KESTREL", "LUMEN", "ORCHARD"]
BADGE_WORDS = ["NEW", "HOT", "TOP"]
SIZES = [(512, 512), (640, 480), (480, 640), (576, 576)]
# Starting backgrounds: plain, moderately coloured; a task uses the first (in a seeded order) that passes
# none of its goal's background checks, so the untouched ad never meets them.
PALETTE = [
    "#c9b79c",
    "#9fb3c8",
    "#b39ddb",
    "#f0b8a0",
    "#80cbc4",
    "#d7ccc8",
    "#cfd8dc",
    "#bcaaa4",
    "#a5b4c4",
    "#8e7f96",
    "#7d8a99",
    "#9a8478",
    "#94848f",
]
ACCENTS = ["#e65100", "#1565c0", "#6a1b9a", "#00838f", "#c62828", "#283593"]


def _catalog(spec: dict[str, Any]) -> dict[str, Any]:
    boxes = spec["boxes"]
    regions = [
        {"id": "r1", "box": boxes["headline"], "kind": "text", "label": "headline", "text": spec["headline"]},
        {"id": "r2", "box": boxes["slogan"], "kind": "text", "label": "slogan", "text": spec["slogan"]},
        {"id": "r3", "box": boxes["price"], "kind": "text", "label": "price tag", "text": spec["price"]},
        {"id": "r4", "box": boxes["badge"], "kind": "object", "label": "badge", "text": spec["badge"]},
        {"id": "r5", "box": boxes["logo"], "kind": "text", "label": "logo", "text": spec["logo"]},
        {"id": "r6", "box": boxes["product"], "kind": "object", "label": f"product photo ({spec['photo']})"},
        {"id": "r7", "box": [0.0, 0.0, 1.0, 1.0], "kind": "background", "label": "background"},
    ]
    return {"width": spec["size"][0], "height": spec["size"][1], "regions": regions}


def _grow(box: list[float], by: float) -> list[float]:
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * by, (y1 - y0) * by
    return [
        round(max(0.0, x0 - dx), 4),
        round(max(0.0, y0 - dy), 4),
        round(min(1.0, x1 + dx), 4),
        round(min(1.0, y1 + dy), 4),
    ]


def _longest_word(text: str) -> str:
    return max(text.replace("$", " ").split(), key=len)


def _checklist(spec: dict[str, Any], family: Family) -> tuple[list[dict[str, Any]], list[str]]:
    items: list[dict[str, Any]] = []
    keep: list[str] = []

    def add(text: str, check: dict[str, Any], keeps: bool = False) -> None:
        item_id = f"c{len(items) + 1}"
        items.append({"id": item_id, "text": text, "check": check})
        if keeps:
            keep.append(item_id)

    for check in family.background:
        add(
            check.text,
            {
                "type": "color_in_range",
                "region": "background",
                "stat": check.stat,
                "min": check.low,
                "max": check.high,
            },
        )
    if family.words:
        add(
            f"the slogan mentions {' or '.join(repr(w) for w in family.words[:3])}",
            {"type": "text_contains", "region": "r2", "any_of": list(family.words)},
        )
    element = family.element
    slot = _grow(spec["boxes"]["slot"], 0.3)
    x0, y0 = spec["boxes"]["slot"][:2]
    where = ("at the bottom right" if x0 > 0.5 else "at the bottom left") if y0 > 0.6 else "left of the photo"
    if element is not None and element.tool == "add_icon":
        add(
            f"a {element.icon} icon is added in the free space {where}",
            {"type": "new_element", "region": slot},
        )
    elif element is not None:
        add(
            f"a badge reading {element.text!r} is added in the free space {where}",
            {"type": "text_contains", "region": slot, "any_of": list(element.words)},
        )
    if element is None:  # minimalist: the old badge goes
        add(
            f"the {spec['badge']!r} badge is removed",
            {"type": "text_absent", "region": "r4", "none_of": [spec["badge"]]},
        )
        add("the badge's area is cleared", {"type": "changed", "region": "r4", "min_fraction": 0.3})
    add(
        "the product photo stays unchanged",
        {"type": "preserved", "region": "r6", "max_mean_diff": 0.03},
        True,
    )
    add(
        f"the product name {spec['headline']!r} stays legible",
        {"type": "text_contains", "region": "r1", "any_of": [_longest_word(spec["headline"])]},
        True,
    )
    add(
        f"the logo {spec['logo']!r} stays legible",
        {"type": "text_contains", "region": "r5", "any_of": [_longest_word(spec["logo"])]},
        True,
    )
    return items, keep


def _ground_truth(spec: dict[str, Any], family: Family, rng: random.Random) -> list[dict[str, Any]]:
    first, second = rng.choice(family.gradients)
    calls: list[dict[str, Any]] = [
        {
            "tool": "replace_background",
            "region": "background",
            "args": {"fill": "linear_gradient", "color": first, "second_color": second, "angle": 90.0},
        }
    ]
    if family.slogans:
        calls.append({"tool": "replace_text", "region": "r2", "args": {"text": rng.choice(family.slogans)}})
    element = family.element
    if element is None:
        calls.append({"tool": "remove_object", "region": "r4", "args": {}})
    elif element.tool == "add_icon":
        calls.append(
            {
                "tool": "add_icon",
                "region": spec["boxes"]["slot"],
                "args": {"icon": element.icon, "color": element.color},
            }
        )
    else:
        calls.append(
            {
                "tool": "add_badge",
                "region": spec["boxes"]["slot"],
                "args": {"text": element.text, "color": element.color},
            }
        )
    return calls


def _passes_any_background_check(colours: list[str], family: Family) -> bool:
    """Whether a starting gradient already meets one of the family's background checks."""
    from pixplan.graph.metric_judge import in_range, region_stats

    top, bottom = np.array(hex_rgb(colours[0]), np.float32), np.array(hex_rgb(colours[1]), np.float32)
    ramp = np.linspace(0.0, 1.0, 64, dtype=np.float32)[:, None, None]
    gradient = np.broadcast_to(top + (bottom - top) * ramp, (64, 8, 3))
    image = Image.fromarray(np.clip(gradient + 0.5, 0, 255).astype(np.uint8))
    stats = region_stats(image, np.ones((64, 8), np.float32))
    return any(
        stats[check.stat] is not None and in_range(check.stat, stats[check.stat], check.low, check.high)
        for check in family.background
    )


def assign_splits(family: str, per_family: int, seed: int = DEFAULT_SEED) -> list[str]:
    """The split of each task index of a family: a seeded shuffle, then `SPLIT_SIZES` test and val, rest train."""
    order = list(range(per_family))
    random.Random(f"{seed}:{family}").shuffle(order)
    splits = ["train"] * per_family
    for position, index in enumerate(order):
        if position < SPLIT_SIZES["test"]:
            splits[index] = "test"
        elif position < SPLIT_SIZES["test"] + SPLIT_SIZES["val"]:
            splits[index] = "val"
    return splits


def generate_tasks(
    out: str | os.PathLike[str],
    *,
    seed: int = DEFAULT_SEED,
    per_family: int = DEFAULT_PER_FAMILY,
    size: tuple[int, int] | None = None,
) -> list[Task]:
    """Generate the benchmark into `out`: `tasks.jsonl` and `images/`. Same seed, same bytes."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    tasks: list[Task] = []
    for family_index, (name, family) in enumerate(FAMILIES.items()):
        splits = assign_splits(name, per_family, seed)
        for index in range(per_family):
            task_rng = random.Random(f"{seed}:{name}:{index}")
            product = list(PRODUCTS)[(index + family_index) % len(PRODUCTS)]
            details = PRODUCTS[product]
            width, height = size or task_rng.choice(SIZES)
            layout = task_rng.choice(LAYOUTS)
            slot_free = layout_boxes(layout, width, height)
            spec = {
                "size": [width, height],
                "layout": layout,
                "photo": product,
                "headline": task_rng.choice(details["names"]),
                "slogan": task_rng.choice(details["slogans"]),
                "price": task_rng.choice(details["prices"]),
                "badge": task_rng.choice(BADGE_WORDS),
                "logo": task_rng.choice(BRANDS),
                "accent": task_rng.choice(ACCENTS),
                "boxes": {key: [round(v, 4) for v in box] for key, box in slot_free.items()},
            }
            palette = PALETTE[:]
            task_rng.shuffle(palette)
            for colour in palette:
                shade = tuple(max(0, round(c * 0.85)) for c in hex_rgb(colour))
                spec["background"] = [colour, "#{:02x}{:02x}{:02x}".format(*shade)]
                if not _passes_any_background_check(spec["background"], family):
                    break
            else:
                raise RuntimeError(f"no starting background fails every {name} background check")
            spec["light_text"] = False
            image, background = render_ad(spec)
            task_id = f"{name}-{index:03d}"
            image_path, mask_path = (
                out / "images" / f"{task_id}.png",
                out / "images" / f"{task_id}-background.png",
            )
            image.save(image_path, optimize=False, compress_level=6)
            background.save(mask_path, compress_level=6)
            checklist, keep = _checklist(spec, family)
            task = Task(
                id=task_id,
                family=name,
                split=splits[index],
                goal=task_rng.choice(family.goals),
                image=image_path,
                checklist=[ChecklistItem.model_validate(item) for item in checklist],
                keep=keep,
                catalog=_catalog(spec),
                background_mask=mask_path,
                ground_truth=_ground_truth(spec, family, task_rng),
                meta={"spec": spec, "seed": seed},
            )
            tasks.append(task)
    save_tasks(tasks, out / "tasks.jsonl")
    return tasks


def bundled_path() -> Path:
    """Where the bundled benchmark lives once generated."""
    return cache_dir() / "benchmark" / f"{BENCHMARK_VERSION}-seed{DEFAULT_SEED}"


def bundled_tasks(split: str | None = None) -> list[Task]:
    """The bundled benchmark (300 tasks), generated on first use (about 10 s) and read from the cache after."""
    path = bundled_path()
    if not (path / "tasks.jsonl").exists():
        temporary = path.with_name(path.name + f".tmp-{os.getpid()}")
        generate_tasks(temporary)
        try:
            temporary.rename(path)
        except OSError:  # another process finished first
            import shutil

            shutil.rmtree(temporary, ignore_errors=True)
    return load_tasks(path, split)


def file_digest(folder: Path) -> str:
    """Hash of every file in a generated benchmark folder (names and bytes), to check determinism."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()
