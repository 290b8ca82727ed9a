"""The pixplan benchmark: abstract-goal editing tasks on synthetic advertisements, with typed checklists.

Each task is an ad composed from a real photograph (scikit-image's bundled photos) with a rendered background,
a headline (the product name), a slogan, a price tag, a badge and a logo text, in one of several layouts,
sizes and type sizes; an abstract goal from one of twelve families ("make this ad more eco-friendly", "adapt
it for a winter campaign", ...), phrased in several ways; a checklist of natural-language requirements, each
with a typed pixel check (`pixplan.graph.checks`); and the ground truth an oracle needs: the intended edits as
tool calls with regions and arguments.

Everything is generated deterministically from a seed, so the benchmark is not committed: `bundled_tasks()`
writes it once into a cache folder (`$PIXPLAN_CACHE` or `~/.cache/pixplan`) and reads it from there.
`pixplan tasks generate --out DIR` writes the same files anywhere. The format (one JSON object per line of
`tasks.jsonl`, images beside it) is documented in `docs/tasks.md`; users add their own tasks in it.

    python -m pixplan.training.tasks   # prints a summary of the bundled benchmark
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pixplan.graph.checks import ChecklistItem
from pixplan.tools.regions import RegionCatalog, save_catalog
from pixplan.tools.store import ImageRef, ImageStore, open_image

#: Bump when generation changes: the cache folder is keyed by it.
BENCHMARK_VERSION = "v3"
DEFAULT_SEED = 0
DEFAULT_PER_FAMILY = 25
SPLIT_SIZES = {"test": 4, "val": 4}  # per family; the rest is train


# ------------------------------------------------------------------------------------------------- task type


@dataclass(kw_only=True)
class Task:
    """One benchmark task: an image, a goal, a checklist, and optionally a catalog and the ground truth.

    `keep` lists the checklist items that ask for something to stay (product, logo, headline); the others ask
    for a change. `ground_truth` is a list of tool calls ``{"tool", "region", "args"}`` that meets the goal.
    """

    id: str
    goal: str
    image: Path
    checklist: list[ChecklistItem]
    family: str = "custom"
    split: str = "test"
    keep: list[str] = field(default_factory=list)
    catalog: dict[str, Any] | None = None  # {"width", "height", "regions": [...]}, ids as in the checks
    background_mask: Path | None = None  # white where the background is; the catalog's 'background'
    ground_truth: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self, root: Path) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "family": self.family,
            "split": self.split,
            "goal": self.goal,
            "image": _relative(self.image, root),
            "checklist": [
                {**item.model_dump(exclude_none=True), **({"keep": True} if item.id in self.keep else {})}
                for item in self.checklist
            ],
        }
        if self.catalog is not None:
            record["catalog"] = self.catalog
        if self.background_mask is not None:
            record["background_mask"] = _relative(self.background_mask, root)
        if self.ground_truth:
            record["ground_truth"] = self.ground_truth
        if self.meta:
            record["meta"] = self.meta
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any], root: Path) -> Task:
        items = record["checklist"]
        return cls(
            id=str(record["id"]),
            goal=record["goal"],
            image=root / record["image"],
            checklist=[ChecklistItem.model_validate(item) for item in items],
            family=record.get("family", "custom"),
            split=record.get("split", "test"),
            keep=[item["id"] for item in items if item.get("keep")],
            catalog=record.get("catalog"),
            background_mask=root / record["background_mask"] if record.get("background_mask") else None,
            ground_truth=record.get("ground_truth", []),
            meta=record.get("meta", {}),
        )


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def load_tasks(path: str | os.PathLike[str], split: str | None = None) -> list[Task]:
    """Tasks from a `tasks.jsonl` file (or a folder holding one); relative image paths are beside it."""
    path = Path(path)
    if path.is_dir():
        path = path / "tasks.jsonl"
    tasks = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            tasks.append(Task.from_json(json.loads(line), path.parent))
        except (ValueError, KeyError) as error:
            raise ValueError(f"{path}:{number}: invalid task: {error}") from None
    return [task for task in tasks if split in (None, "all") or task.split == split]


def save_tasks(tasks: list[Task], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(task.to_json(path.parent), sort_keys=True) for task in tasks]
    path.write_text("\n".join(lines) + "\n")


def prepare(task: Task, store: ImageStore) -> tuple[ImageRef, RegionCatalog | None]:
    """Put the task's image in the store, with its catalog (and background mask), as every system sees it."""
    ref = store.put_file(task.image)
    if task.catalog is None:
        return ref, None
    regions = [dict(region) for region in task.catalog["regions"]]
    if task.background_mask is not None:
        mask_ref = store.put(open_image(task.background_mask).convert("L"))
        for region in regions:
            if region["kind"] == "background":
                region["mask"] = mask_ref["id"]
    catalog = RegionCatalog(image_id=ref["id"], width=ref["width"], height=ref["height"], regions=regions)
    save_catalog(store, catalog)
    return ref, catalog


# ------------------------------------------------------------------------------------------------- families

# Each family: goal phrasings; slogan words (the check) and slogans that contain one (the ground truth);
# background colour checks and gradients that meet them; the new element (an icon or a badge), if any.
FAMILIES: dict[str, dict[str, Any]] = {
    "eco": {
        "goals": [
            "Make this advertisement more eco-friendly",
            "Give this ad a green, sustainable feel",
            "Rework the ad so it appeals to environmentally conscious shoppers",
            "Make the ad say that the brand cares about the planet",
        ],
        "words": ["eco", "green", "planet", "sustainab", "nature", "earth"],
        "slogans": ["Good for the planet", "Naturally green", "Eco friendly choice"],
        "background": [("hue", 75, 165), ("saturation", 0.2, 1.0)],
        "gradients": [("#2e7d32", "#81c784"), ("#33691e", "#9ccc65"), ("#1b5e20", "#66bb6a")],
        "element": {"tool": "add_icon", "icon": "leaf", "color": "white"},
    },
    "winter": {
        "goals": [
            "Adapt this ad for a winter campaign",
            "Make the advertisement feel wintry and cold",
            "Turn this into a snowy holiday-season winter ad",
        ],
        "words": ["winter", "snow", "frost", "cozy", "chill"],
        "slogans": ["Warm up this winter", "Snow days ahead", "Cozy winter deals"],
        "background": [("hue", 180, 250), ("brightness", 0.6, 1.0)],
        "gradients": [("#e3f2fd", "#90caf9"), ("#e1f5fe", "#81d4fa"), ("#eceff1", "#90a4ae")],
        "element": {"tool": "add_icon", "icon": "snowflake", "color": "#1565c0"},
    },
    "summer": {
        "goals": [
            "Give this ad a summer vibe",
            "Make the advertisement feel sunny and summery",
            "Adapt this ad for a summer beach campaign",
        ],
        "words": ["summer", "sunny", "sun", "beach"],
        "slogans": ["Summer is here", "Sunny days deal", "Hello summer"],
        "background": [("warmth", 0.15, 1.0), ("brightness", 0.55, 1.0)],
        "gradients": [("#ffe082", "#ffb74d"), ("#fff176", "#ffa726"), ("#ffcc80", "#ffab40")],
        "element": {"tool": "add_icon", "icon": "sun", "color": "#e65100"},
    },
    "luxury": {
        "goals": [
            "Make this ad look luxurious and premium",
            "Give the advertisement an upscale, high-end look",
            "Reposition this ad for a luxury audience",
        ],
        "words": ["luxury", "premium", "exclusive", "finest", "elegan"],
        "slogans": ["Premium quality", "Pure luxury", "The finest choice"],
        "background": [("brightness", 0.0, 0.25)],
        "gradients": [("#121212", "#3a3a3a"), ("#1a1a2e", "#2c2c3e"), ("#0d0d0d", "#2b2520")],
        "element": {"tool": "add_icon", "icon": "star", "color": "#d4af37"},
    },
    "kids": {
        "goals": [
            "Make this ad appeal to kids",
            "Turn the advertisement into something playful for children",
            "Make the ad fun and colourful for families with young kids",
        ],
        "words": ["kids", "fun", "play", "family", "happy"],
        "slogans": ["Fun for kids", "Play all day", "Happy family fun"],
        "background": [("saturation", 0.5, 1.0), ("brightness", 0.5, 1.0)],
        "gradients": [("#ff4081", "#ffd740"), ("#40c4ff", "#ffeb3b"), ("#ff6e40", "#ffff00")],
        "element": {"tool": "add_icon", "icon": "heart", "color": "#6a1b9a"},
    },
    "vegan": {
        "goals": [
            "Adapt this ad for a vegan audience",
            "Make the advertisement plant-based and vegan friendly",
            "Market this product to vegans",
        ],
        "words": ["vegan", "plant"],
        "slogans": ["Proudly vegan", "Plant powered", "Vegan and tasty"],
        "background": [("hue", 70, 160), ("saturation", 0.2, 1.0)],
        "gradients": [("#aed581", "#558b2f"), ("#c5e1a5", "#7cb342"), ("#8bc34a", "#33691e")],
        "element": {"tool": "add_badge", "text": "VEGAN", "color": "white"},
        "element_words": ["vegan"],
    },
    "festive": {
        "goals": [
            "Make this ad festive for the holidays",
            "Give the advertisement a Christmas holiday feel",
            "Adapt the ad for the festive season",
        ],
        "words": ["holiday", "festive", "season", "gift", "merry"],
        "slogans": ["Happy holidays", "The perfect gift", "Festive season deals"],
        "background": [("hue", 335, 20), ("saturation", 0.35, 1.0)],
        "gradients": [("#b71c1c", "#e53935"), ("#c62828", "#8e0000"), ("#d32f2f", "#7f0000")],
        "element": {"tool": "add_icon", "icon": "star", "color": "#ffd600"},
    },
    "minimalist": {
        "goals": [
            "Make this ad minimalist",
            "Simplify the advertisement: clean, calm and uncluttered",
            "Give the ad a minimal, Scandinavian look",
        ],
        "words": [],
        "slogans": [],
        "background": [("saturation", 0.0, 0.12), ("brightness", 0.8, 1.0)],
        "gradients": [("#fafafa", "#eeeeee"), ("#ffffff", "#f0f0f0"), ("#f5f5f5", "#e8e8e8")],
        "element": None,
    },
    "night": {
        "goals": [
            "Turn this into a neon night-time ad",
            "Give the advertisement a late-night neon city look",
            "Make the ad feel like it is night",
        ],
        "words": ["night", "neon", "midnight", "late", "dark"],
        "slogans": ["Open late tonight", "Neon nights", "After midnight"],
        "background": [("brightness", 0.0, 0.25)],
        "gradients": [("#0d0221", "#241734"), ("#05004e", "#1a0033"), ("#000814", "#1b263b")],
        "element": {"tool": "add_icon", "icon": "star", "color": "#ff00ff"},
    },
    "retro": {
        "goals": [
            "Give this ad a retro look",
            "Make the advertisement feel vintage, like the seventies",
            "Restyle the ad in an old-school retro way",
        ],
        "words": ["retro", "classic", "vintage", "since", "original"],
        "slogans": ["A true classic", "Retro since 1975", "The original"],
        "background": [("warmth", 0.12, 0.6), ("saturation", 0.15, 0.55)],
        "gradients": [("#d7b98e", "#b08a5a"), ("#e0c097", "#a47148"), ("#cfa670", "#9c6b3c")],
        "element": {"tool": "add_badge", "text": "SINCE 1975", "color": "#8d5524"},
        "element_words": ["since", "1975"],
    },
    "sale": {
        "goals": [
            "Turn this into a sale ad",
            "Make the advertisement announce a big discount",
            "Adapt the ad for a clearance sale",
        ],
        "words": ["sale", "off", "save", "deal", "discount"],
        "slogans": ["Big sale today", "Save big now", "Deals of the week"],
        "background": [("hue", 340, 35), ("saturation", 0.4, 1.0)],
        "gradients": [("#ff5722", "#ff9800"), ("#e53935", "#ff7043"), ("#f4511e", "#ffb300")],
        "element": {"tool": "add_badge", "text": "30% OFF", "color": "#d50000"},
        "element_words": ["30%", "off"],
    },
    "rural": {
        "goals": [
            "Adapt this ad for a rural audience",
            "Make the advertisement speak to farmers and country folk",
            "Give the ad a countryside, farm-fresh feel",
        ],
        "words": ["farm", "country", "local", "village", "homegrown"],
        "slogans": ["Farm fresh quality", "From the country", "Proudly local"],
        "background": [("hue", 25, 140), ("saturation", 0.2, 0.8)],
        "gradients": [("#8d6e63", "#a5d6a7"), ("#a1887f", "#7cb342"), ("#9e9d24", "#6d4c41")],
        "element": {"tool": "add_icon", "icon": "sun", "color": "#f9a825"},
    },
}

BACKGROUND_TEXT = {
    "hue": "the background's colour reads as {label}",
    "saturation": "the background is {label}",
    "brightness": "the background is {label}",
    "warmth": "the background feels {label}",
}


def _background_label(stat: str, low: float, high: float) -> str:
    if stat == "hue":
        for name, (a, b) in {
            "red": (335, 20),
            "orange or red": (340, 35),
            "green": (70, 165),
            "blue": (180, 250),
        }.items():
            if (a, b) == (low, high) or (abs(a - low) <= 10 and abs(b - high) <= 10):
                return name
        return "earthy green or brown"
    if stat == "brightness":
        return "dark" if high <= 0.3 else "light" if low >= 0.6 else "mid-toned"
    if stat == "saturation":
        if high <= 0.15:
            return "muted, almost colourless"
        if high < 0.6:
            return "softly coloured, neither grey nor garish"
        return "vivid and colourful" if low >= 0.3 else "clearly coloured, not grey"
    return "warm"


# ------------------------------------------------------------------------------------------------- ad rendering

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
LAYOUTS = ["left", "right", "top", "bottom"]


@cache
def photo(name: str) -> Image.Image:
    """A bundled scikit-image photograph as RGB."""
    import skimage.data

    array = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    image = Image.fromarray(array)
    return image.convert("RGB")


@cache
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font, with the basic layout engine so renders match on every machine."""
    return ImageFont.load_default(size).font_variant(layout_engine=ImageFont.Layout.BASIC)


def _hex(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return (int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16))


def _fit_font(
    draw: ImageDraw.ImageDraw, text: str, width: int, height: int, stroke: float
) -> ImageFont.FreeTypeFont:
    def fits(size: int) -> bool:
        left, top, right, bottom = draw.textbbox(
            (0, 0), text, font=font(size), stroke_width=round(size * stroke)
        )
        return right - left <= width and bottom - top <= height

    low, high = 8, max(8, 2 * height)  # the largest size that fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return font(low)


def _layout(name: str, width: int, height: int) -> dict[str, tuple[float, float, float, float]]:
    """Normalized boxes of the ad's elements for a layout. `slot` is empty background for a new element."""
    if name in ("left", "right"):
        boxes = {
            "product": (0.05, 0.17, 0.53, 0.80),
            "headline": (0.57, 0.2, 0.96, 0.32),
            "slogan": (0.57, 0.37, 0.96, 0.45),
            "price": (0.6, 0.52, 0.9, 0.63),
            "badge": (0.04, 0.02, 0.04 + 0.13 * height / width, 0.15),
            "logo": (0.05, 0.88, 0.32, 0.93),
            "slot": (0.74, 0.74, 0.92, 0.74 + 0.18 * width / height),
        }
        if name == "right":
            boxes = {key: (1 - x1, y0, 1 - x0, y1) for key, (x0, y0, x1, y1) in boxes.items()}
        return boxes
    boxes = {
        "headline": (0.08, 0.04, 0.78, 0.14),
        "product": (0.2, 0.18, 0.8, 0.66),
        "slogan": (0.1, 0.7, 0.9, 0.78),
        "price": (0.56, 0.83, 0.86, 0.94),
        "badge": (0.82, 0.02, 0.82 + 0.13 * height / width, 0.15),
        "logo": (0.06, 0.86, 0.34, 0.91),
        "slot": (0.02, 0.38, 0.02 + 0.12 * height / width, 0.5),
    }
    if name == "bottom":  # headline under the photo, slogan at the top
        boxes["headline"], boxes["slogan"] = (0.08, 0.7, 0.78, 0.8), (0.08, 0.05, 0.78, 0.13)
    return boxes


def render_ad(spec: dict[str, Any]) -> tuple[Image.Image, Image.Image]:
    """Render an ad from its spec; returns the image and its background mask (L, white = background)."""
    width, height = spec["size"]
    boxes = {key: tuple(value) for key, value in spec["boxes"].items()}
    px = {
        key: (round(b[0] * width), round(b[1] * height), round(b[2] * width), round(b[3] * height))
        for key, b in boxes.items()
    }
    top, bottom = (
        np.array(_hex(spec["background"][0]), np.float32),
        np.array(_hex(spec["background"][1]), np.float32),
    )
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    canvas = np.broadcast_to(top + (bottom - top) * ramp, (height, width, 3))
    image = Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
    foreground = Image.new("L", (width, height), 0)
    draw, mask = ImageDraw.Draw(image), ImageDraw.Draw(foreground)
    # Product photo, centre-cropped to its box, with a thin white frame.
    x0, y0, x1, y1 = px["product"]
    source = photo(spec["photo"])
    scale = max((x1 - x0) / source.width, (y1 - y0) / source.height)
    resized = source.resize(
        (max(1, round(source.width * scale)), max(1, round(source.height * scale))), Image.Resampling.LANCZOS
    )
    left, upper = (resized.width - (x1 - x0)) // 2, (resized.height - (y1 - y0)) // 2
    image.paste(resized.crop((left, upper, left + x1 - x0, upper + y1 - y0)), (x0, y0))
    draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(255, 255, 255), width=max(2, width // 160))
    mask.rectangle([x0, y0, x1 - 1, y1 - 1], fill=255)
    accent = _hex(spec["accent"])
    # Price tag and badge: accent shapes with white text.
    x0, y0, x1, y1 = px["price"]
    draw.rounded_rectangle([x0, y0, x1, y1], radius=(y1 - y0) // 3, fill=accent)
    mask.rounded_rectangle([x0, y0, x1, y1], radius=(y1 - y0) // 3, fill=255)
    _text(draw, mask, spec["price"], (x0, y0, x1, y1), (255, 255, 255), None, inset=0.18)
    x0, y0, x1, y1 = px["badge"]
    draw.ellipse([x0, y0, x1, y1], fill=accent, outline=(255, 255, 255), width=max(2, width // 200))
    mask.ellipse([x0, y0, x1, y1], fill=255)
    _text(draw, mask, spec["badge"], (x0, y0, x1, y1), (255, 255, 255), None, inset=0.24)
    # Headline and logo: text with a contrasting outline, legible on any background; the slogan is plain.
    dark = (25, 25, 35)
    light = (255, 255, 255)
    fill, outline = (light, dark) if spec["light_text"] else (dark, light)
    _text(draw, mask, spec["headline"], px["headline"], fill, outline)
    _text(draw, mask, spec["slogan"], px["slogan"], fill, None)  # plain: the text most often replaced
    _text(draw, mask, spec["logo"], px["logo"], accent, light)
    background = Image.eval(foreground, lambda value: 255 - value)
    return image, background


def _text(draw, mask, text, box, fill, outline, inset: float = 0.0) -> None:
    x0, y0, x1, y1 = box
    dx, dy = round((x1 - x0) * inset / 2), round((y1 - y0) * inset / 2)
    x0, y0, x1, y1 = x0 + dx, y0 + dy, x1 - dx, y1 - dy
    stroke = 0.08 if outline is not None else 0.0
    face = _fit_font(draw, text, x1 - x0, y1 - y0, stroke)
    stroke_width = round(face.size * stroke)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=face, stroke_width=stroke_width)
    origin = (x0 + (x1 - x0 - (right - left)) // 2 - left, y0 + (y1 - y0 - (bottom - top)) // 2 - top)
    draw.text(origin, text, font=face, fill=fill, stroke_width=stroke_width, stroke_fill=outline)
    # The text's pixels, grown by a few pixels, belong to the foreground.
    grow = stroke_width + 2
    mask.text(origin, text, font=face, fill=255, stroke_width=grow, stroke_fill=255)


# ------------------------------------------------------------------------------------------------- generation


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


def _checklist(spec: dict[str, Any], family: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    items: list[dict[str, Any]] = []
    keep: list[str] = []

    def add(text: str, check: dict[str, Any], keeps: bool = False) -> None:
        item_id = f"c{len(items) + 1}"
        items.append({"id": item_id, "text": text, "check": check})
        if keeps:
            keep.append(item_id)

    for stat, low, high in family["background"]:
        add(
            BACKGROUND_TEXT[stat].format(label=_background_label(stat, low, high)),
            {"type": "color_in_range", "region": "background", "stat": stat, "min": low, "max": high},
        )
    if family["words"]:
        add(
            f"the slogan mentions {' or '.join(repr(w) for w in family['words'][:3])}",
            {"type": "text_contains", "region": "r2", "any_of": family["words"]},
        )
    element = family["element"]
    slot = _grow(spec["boxes"]["slot"], 0.3)
    x0, y0 = spec["boxes"]["slot"][:2]
    where = ("at the bottom right" if x0 > 0.5 else "at the bottom left") if y0 > 0.6 else "left of the photo"
    if element is not None and element["tool"] == "add_icon":
        add(
            f"a {element['icon']} icon is added in the free space {where}",
            {"type": "new_element", "region": slot},
        )
    elif element is not None:
        add(
            f"a badge reading {element['text']!r} is added in the free space {where}",
            {"type": "text_contains", "region": slot, "any_of": family["element_words"]},
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


def _ground_truth(spec: dict[str, Any], family: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    first, second = rng.choice(family["gradients"])
    calls: list[dict[str, Any]] = [
        {
            "tool": "replace_background",
            "region": "background",
            "args": {"fill": "linear_gradient", "color": first, "second_color": second, "angle": 90.0},
        }
    ]
    if family["slogans"]:
        calls.append(
            {"tool": "replace_text", "region": "r2", "args": {"text": rng.choice(family["slogans"])}}
        )
    element = family["element"]
    if element is None:
        calls.append({"tool": "remove_object", "region": "r4", "args": {}})
    elif element["tool"] == "add_icon":
        calls.append(
            {
                "tool": "add_icon",
                "region": spec["boxes"]["slot"],
                "args": {"icon": element["icon"], "color": element["color"]},
            }
        )
    else:
        calls.append(
            {
                "tool": "add_badge",
                "region": spec["boxes"]["slot"],
                "args": {"text": element["text"], "color": element["color"]},
            }
        )
    return calls


def _passes_any_background_check(colours: list[str], family: dict[str, Any]) -> bool:
    """Whether a starting gradient already meets one of the family's background checks."""
    from pixplan.graph.metric_judge import in_range, region_stats

    top, bottom = np.array(_hex(colours[0]), np.float32), np.array(_hex(colours[1]), np.float32)
    ramp = np.linspace(0.0, 1.0, 64, dtype=np.float32)[:, None, None]
    gradient = np.broadcast_to(top + (bottom - top) * ramp, (64, 8, 3))
    image = Image.fromarray(np.clip(gradient + 0.5, 0, 255).astype(np.uint8))
    stats = region_stats(image, np.ones((64, 8), np.float32))
    return any(
        stats[stat] is not None and in_range(stat, stats[stat], low, high)
        for stat, low, high in family["background"]
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
            slot_free = _layout(layout, width, height)
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
                shade = tuple(max(0, round(c * 0.85)) for c in _hex(colour))
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
                goal=task_rng.choice(family["goals"]),
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


EXAMPLE_SPEC: dict[str, Any] = {
    "size": [768, 768],
    "layout": "left",
    "photo": "coffee",
    "headline": "Morning Brew",
    "slogan": "Taste the difference",
    "price": "$4.99",
    "badge": "NEW",
    "logo": "ACME CO",
    "accent": "#e65100",
    "background": ["#c9b79c", "#ab9b85"],
    "light_text": False,
}


def write_example(path: str | os.PathLike[str]) -> Path:
    """The README's example ad (768 x 768, a coffee ad), rendered by the benchmark's generator."""
    spec = dict(EXAMPLE_SPEC, boxes=_layout("left", 768, 768))
    image, _ = render_ad(spec)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    return path


def cache_dir() -> Path:
    """`$PIXPLAN_CACHE`, else `$XDG_CACHE_HOME/pixplan` (usually `~/.cache/pixplan`)."""
    if "PIXPLAN_CACHE" in os.environ:
        return Path(os.environ["PIXPLAN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pixplan"


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


if __name__ == "__main__":
    from collections import Counter

    tasks = bundled_tasks()
    print(f"{len(tasks)} tasks in {bundled_path()}")
    print(Counter(task.split for task in tasks), Counter(task.family for task in tasks))
