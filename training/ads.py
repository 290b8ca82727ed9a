"""The ad renderer: an advertisement composed from a real photograph with a background, texts, a price tag, a
badge and a logo, from a spec (`render_ad`), in one of four layouts (`layout_boxes`).

The benchmark's generator (`pixplan.training.benchmark`) draws specs; `write_example` renders the README's
example ad the same way.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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


def hex_rgb(colour: str) -> tuple[int, int, int]:
    """'#rrggbb' as an (r, g, b) tuple."""
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


def layout_boxes(name: str, width: int, height: int) -> dict[str, tuple[float, float, float, float]]:
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
        np.array(hex_rgb(spec["background"][0]), np.float32),
        np.array(hex_rgb(spec["background"][1]), np.float32),
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
    accent = hex_rgb(spec["accent"])
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
    spec = dict(EXAMPLE_SPEC, boxes=layout_boxes("left", 768, 768))
    image, _ = render_ad(spec)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    return path
