"""Graphics tools: stickers and badges with text, and simple vector icons, placed in a region.

Shapes are drawn with Pillow polygons and ellipses at four times the final size and scaled down, so edges are
smooth at any size. A badge or icon takes the region's box (for a shaped region such as 'background', its
largest free square or strip, away from existing text), keeps its own aspect and sits in the box's centre.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import ToolException, tool
from PIL import Image, ImageDraw

from pixplan.tools.classical import parse_color
from pixplan.tools.editing import apply_edit
from pixplan.tools.regions import RegionArg, RegionCatalog
from pixplan.tools.store import ImageRef
from pixplan.tools.text import (
    _luminance,
    _margin,
    _wrappings,
    box_like,
    draw_text,
    fit_font_size,
    free_space,
    placement_box,
)

BadgeShape = Literal["circle", "rounded_rectangle", "starburst", "ribbon"]
IconName = Literal["leaf", "recycle", "snowflake", "sun", "star", "heart"]

#: Supersampling: shapes are drawn up to 4 times larger (at most `SUPERSAMPLE_SIDE` pixels), then scaled down
#: with a Lanczos filter. Small graphics need the most smoothing; large ones get enough from 2x.
SUPERSAMPLE_SIDE = 2048


def supersample(width: int, height: int) -> int:
    """The drawing scale for a graphic of width x height pixels: 4 for small ones, down to 1 for huge ones."""
    return max(1, min(4, SUPERSAMPLE_SIDE // max(width, height, 1)))


#: Width / height of each badge shape.
BADGE_ASPECT: dict[str, float] = {"circle": 1.0, "starburst": 1.0, "rounded_rectangle": 2.6, "ribbon": 3.2}
#: Default icon colours (a second colour is used where the default would not stand out from the background).
ICON_COLORS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "leaf": ((46, 139, 87), (144, 238, 144)),
    "recycle": ((46, 139, 87), (144, 238, 144)),
    "snowflake": ((70, 130, 180), (240, 248, 255)),
    "sun": ((244, 180, 0), (255, 215, 64)),
    "star": ((232, 170, 20), (255, 215, 64)),
    "heart": ((214, 40, 80), (255, 105, 140)),
}


# ---------------------------------------------------------------------------------------------- placement


def _fit_in(box: tuple[int, int, int, int], aspect: float, margin: int) -> tuple[int, int, int, int]:
    """The largest box of width/height `aspect` centred in `box` (less `margin` on each side)."""
    left, top, right, bottom = box
    width, height = right - left - 2 * margin, bottom - top - 2 * margin
    if width < 4 or height < 4:
        raise ToolException("the region is too small for this; use a larger region or box")
    width, height = min(width, height * aspect), min(height, width / aspect)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    return (
        round(cx - width / 2),
        round(cy - height / 2),
        round(cx - width / 2) + max(1, round(width)),
        round(cy - height / 2) + max(1, round(height)),
    )


#: A graphic placed in a shaped region (the background, an object, the whole image less its text) sits in the
#: middle of the largest free area with room around it: at most this share of that area each way, and at most
#: `SHAPED_REGION_MAX_SIDE` of the image's shorter side (the size an ad gives an icon or badge), instead of
#: filling the area edge to edge. In a box it fills the box.
SHAPED_REGION_FILL = 0.7
SHAPED_REGION_MAX_SIDE = 0.2


def _capped(box: tuple[int, int, int, int], side: int) -> tuple[int, int, int, int]:
    """`box` shrunk about its centre to `SHAPED_REGION_FILL` of it and at most `side` pixels each way."""
    left, top, right, bottom = box
    width = min(round((right - left) * SHAPED_REGION_FILL), side)
    height = min(round((bottom - top) * SHAPED_REGION_FILL), side)
    cx, cy = (left + right) // 2, (top + bottom) // 2
    return cx - width // 2, cy - height // 2, cx - width // 2 + width, cy - height // 2 + height


def _placed(
    image: Image.Image, mask: np.ndarray, catalog: RegionCatalog | None, region: object, aspect: float
):
    """Where a graphic of `aspect` goes in the region, and the pixels behind it."""
    free = free_space(mask, catalog, region)
    box = placement_box(free, aspect=aspect)
    if not box_like(free):
        box = _capped(box, max(8, round(SHAPED_REGION_MAX_SIDE * min(image.size))))
    target = _fit_in(box, aspect, _margin(image))
    behind = np.asarray(image)[target[1] : target[3], target[0] : target[2]]
    return target, behind


def _paste(image: Image.Image, sprite: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """Scale a supersampled RGBA sprite to `box` and composite it onto the image."""
    width, height = box[2] - box[0], box[3] - box[1]
    small = sprite.resize((width, height), Image.Resampling.LANCZOS)
    canvas = image.convert("RGBA")
    canvas.alpha_composite(small, (box[0], box[1]))
    return canvas.convert("RGB")


# ---------------------------------------------------------------------------------------------- badges


def _star_points(
    cx: float, cy: float, outer: float, inner: float, points: int, rotation: float = -90.0
) -> list[tuple[float, float]]:
    vertices = []
    for index in range(2 * points):
        radius = outer if index % 2 == 0 else inner
        angle = math.radians(rotation + index * 180.0 / points)
        vertices.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return vertices


def draw_badge(
    shape: str,
    width: int,
    height: int,
    fill: tuple[int, int, int],
    text: str,
    text_color: tuple[int, int, int],
) -> Image.Image:
    """An RGBA sprite of a badge at (width, height) times `supersample`, text fitted inside its shape."""
    scale = supersample(width, height)
    w, h = width * scale, height * scale
    sprite = Image.new("RGBA", (w, h), (*fill, 0))
    draw = ImageDraw.Draw(sprite)
    colour = (*fill, 255)
    ring = (*text_color, 255)
    line = max(1, round(0.025 * min(w, h)))
    if shape == "circle":
        draw.ellipse((0, 0, w - 1, h - 1), fill=colour)
        inset = 0.06 * w
        draw.ellipse((inset, inset, w - 1 - inset, h - 1 - inset), outline=ring, width=line)
        room = (0.62 * w, 0.5 * h)
    elif shape == "starburst":
        draw.polygon(_star_points(w / 2, h / 2, w / 2, 0.84 * w / 2, 18), fill=colour)
        room = (0.6 * w, 0.46 * h)
    elif shape == "rounded_rectangle":
        draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=0.3 * h, fill=colour)
        inset = 0.08 * h
        draw.rounded_rectangle(
            (inset, inset, w - 1 - inset, h - 1 - inset), radius=0.24 * h, outline=ring, width=line
        )
        room = (w - 0.5 * h, 0.62 * h)
    else:  # ribbon: a band with swallowtail ends
        notch = 0.35 * h
        draw.polygon(
            [(0, 0), (w, 0), (w - notch, h / 2), (w, h), (0, h), (notch, h / 2)],
            fill=colour,
        )
        room = (w - 2.4 * notch, 0.62 * h)
    layout = max(_wrappings(text), key=lambda option: fit_font_size(option, room[0], room[1], max_size=h))
    size = fit_font_size(layout, room[0], room[1], max_size=h)
    return draw_text(sprite, layout, (w / 2, h / 2), size, text_color)


@tool(parse_docstring=True, response_format="content_and_artifact")
def add_badge(
    image_id: str,
    region: RegionArg,
    text: str,
    shape: BadgeShape = "circle",
    color: str | None = None,
    text_color: str | None = None,
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Add a sticker or badge with a short text ('NEW', '-30%', 'ECO', '100% vegan') in a region.

    The badge fills the region's box as far as its shape allows (circles and starbursts are round, rounded
    rectangles and ribbons are wide) and sits in its centre; in a shaped region such as 'background' it takes
    the largest free spot, away from existing text. Keep the text short: it is wrapped and shrunk to fit.
    The region is where the badge goes (a small box in a corner for a sticker).

    Args:
        image_id: Id of the image to edit.
        text: The badge's text, a few words at most.
        shape: 'circle', 'starburst' (a sale sticker), 'rounded_rectangle' (a pill label) or 'ribbon' (a banner with notched ends).
        color: Badge colour as a CSS name ('crimson', 'forestgreen') or hex code; default: red on light backgrounds, gold on dark ones.
        text_color: Text colour; default: white or near-black, whichever contrasts with the badge.
    """
    text = text.strip()
    if not text:
        raise ToolException("add_badge needs a short non-empty `text`, such as 'NEW' or '-30%'")
    if shape not in BADGE_ASPECT:
        raise ToolException(f"unknown badge shape {shape!r}: use one of {', '.join(BADGE_ASPECT)}")
    fill_arg = parse_color(color) if color is not None else None
    text_arg = parse_color(text_color) if text_color is not None else None

    def edit(image: Image.Image, mask: np.ndarray, catalog: RegionCatalog | None) -> Image.Image:
        box, behind = _placed(image, mask, catalog, region, BADGE_ASPECT[shape])
        background = np.median(behind.reshape(-1, 3), axis=0)
        fill = fill_arg or ((200, 30, 45) if _luminance(background) > 0.45 else (255, 200, 40))
        ink = text_arg or ((20, 20, 20) if _luminance(fill) > 0.6 else (255, 255, 255))
        sprite = draw_badge(shape, box[2] - box[0], box[3] - box[1], fill, text, ink)
        return _paste(image, sprite, box)

    return apply_edit(
        tool="add_badge",
        image_id=image_id,
        region=region,
        args={"text": text, "shape": shape, "color": color, "text_color": text_color},
        edit=edit,
        config=config,
    )


# ---------------------------------------------------------------------------------------------- icons


def _heart(draw: ImageDraw.ImageDraw, s: float, colour: tuple[int, ...]) -> None:
    points = []
    for step in range(120):
        t = 2 * math.pi * step / 120
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        points.append((s / 2 + x * s / 34, s * 0.46 - y * s / 34))
    draw.polygon(points, fill=colour)


def _star(draw: ImageDraw.ImageDraw, s: float, colour: tuple[int, ...]) -> None:
    draw.polygon(_star_points(s / 2, s * 0.53, s * 0.49, s * 0.2, 5), fill=colour)


def _sun(draw: ImageDraw.ImageDraw, s: float, colour: tuple[int, ...]) -> None:
    c = s / 2
    draw.ellipse((c - 0.22 * s, c - 0.22 * s, c + 0.22 * s, c + 0.22 * s), fill=colour)
    for ray in range(12):
        angle = math.radians(ray * 30)
        half = math.radians(6)
        tip = (c + 0.49 * s * math.cos(angle), c + 0.49 * s * math.sin(angle))
        base_a = (c + 0.29 * s * math.cos(angle - half), c + 0.29 * s * math.sin(angle - half))
        base_b = (c + 0.29 * s * math.cos(angle + half), c + 0.29 * s * math.sin(angle + half))
        draw.polygon([base_a, tip, base_b], fill=colour)


def _snowflake(draw: ImageDraw.ImageDraw, s: float, colour: tuple[int, ...]) -> None:
    c = s / 2
    width = max(1, round(0.06 * s))

    def stroke(start: tuple[float, float], end: tuple[float, float]) -> None:
        draw.line([start, end], fill=colour, width=width)
        for x, y in (start, end):
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=colour)

    for arm in range(6):
        angle = math.radians(90 + arm * 60)
        tip = (c + 0.46 * s * math.cos(angle), c - 0.46 * s * math.sin(angle))
        stroke((c, c), tip)
        for along, length in ((0.22, 0.14), (0.34, 0.09)):
            base = (c + along * s * math.cos(angle), c - along * s * math.sin(angle))
            for side in (-1, 1):
                branch = angle + side * math.radians(45)
                stroke(
                    base, (base[0] + length * s * math.cos(branch), base[1] - length * s * math.sin(branch))
                )


def _leaf(draw: ImageDraw.ImageDraw, s: float, colour: tuple[int, ...]) -> None:
    # Two circular arcs meeting at the tip and the base (a vesica), tilted 45 degrees, with a stem and a vein.
    points_upper, points_lower = [], []
    for step in range(41):
        t = step / 40
        along = -0.42 + 0.84 * t
        bulge = 0.24 * math.sin(math.pi * t) * (1.0 - 0.25 * t)
        points_upper.append((along, bulge))
        points_lower.append((along, -bulge))
    outline = points_upper + points_lower[::-1]
    cos, sin = math.cos(math.radians(-45)), math.sin(math.radians(-45))

    def place(x: float, y: float) -> tuple[float, float]:
        return (s * (0.52 + x * cos - y * sin), s * (0.48 + x * sin + y * cos))

    draw.polygon([place(x, y) for x, y in outline], fill=colour)
    width = max(1, round(0.045 * s))
    draw.line([place(-0.56, 0.0), place(-0.38, 0.0)], fill=colour, width=width)
    # The vein is cut out of the leaf (transparent), so the background shows through it.
    draw.line([place(-0.36, 0.0), place(0.3, 0.0)], fill=(0, 0, 0, 0), width=max(1, round(0.025 * s)))


def _recycle(draw: ImageDraw.ImageDraw, s: float, colour: tuple[int, ...]) -> None:
    # Three arrows chasing each other around a circle.
    c, radius = s / 2, 0.33 * s
    width = max(1, round(0.11 * s))
    for arrow in range(3):
        start = arrow * 120 - 80
        end = start + 82
        draw.arc((c - radius, c - radius, c + radius, c + radius), start, end, fill=colour, width=width)
        angle = math.radians(end)
        tip_angle = math.radians(end + 16)
        tangent = angle + math.pi / 2
        mid = (c + (radius - width / 2) * math.cos(angle), c + (radius - width / 2) * math.sin(angle))
        half = 1.1 * width
        draw.polygon(
            [
                (mid[0] + half * math.cos(angle), mid[1] + half * math.sin(angle)),
                (mid[0] - half * math.cos(angle), mid[1] - half * math.sin(angle)),
                (
                    c + (radius - width / 2) * math.cos(tip_angle) + 0.02 * s * math.cos(tangent),
                    c + (radius - width / 2) * math.sin(tip_angle) + 0.02 * s * math.sin(tangent),
                ),
            ],
            fill=colour,
        )


ICONS = {
    "leaf": _leaf,
    "recycle": _recycle,
    "snowflake": _snowflake,
    "sun": _sun,
    "star": _star,
    "heart": _heart,
}


def draw_icon(icon: str, size: int, colour: tuple[int, int, int]) -> Image.Image:
    """An RGBA sprite of an icon, `size` times `supersample` pixels square."""
    side = size * supersample(size, size)
    sprite = Image.new("RGBA", (side, side), (*colour, 0))
    ICONS[icon](ImageDraw.Draw(sprite), float(side), (*colour, 255))
    return sprite


@tool(parse_docstring=True, response_format="content_and_artifact")
def add_icon(
    image_id: str,
    region: RegionArg,
    icon: IconName,
    color: str | None = None,
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Draw a simple flat icon (leaf, recycle, snowflake, sun, star, heart) in a region.

    The icon is square: it is as large as the region's box allows and sits in its centre; in a shaped region
    such as 'background' it takes the largest free square, away from existing text. Use a small box for a
    small icon.

    Args:
        image_id: Id of the image to edit.
        icon: Which icon: 'leaf' or 'recycle' (eco, natural), 'snowflake' (winter), 'sun' (summer), 'star' (quality, festive) or 'heart' (love, kids).
        color: Icon colour as a CSS name ('forestgreen', 'white') or hex code; default: the icon's natural colour, lightened on dark backgrounds.
    """
    if icon not in ICONS:
        raise ToolException(f"unknown icon {icon!r}: use one of {', '.join(ICONS)}")
    colour_arg = parse_color(color) if color is not None else None

    def edit(image: Image.Image, mask: np.ndarray, catalog: RegionCatalog | None) -> Image.Image:
        box, behind = _placed(image, mask, catalog, region, 1.0)
        background = _luminance(np.median(behind.reshape(-1, 3), axis=0))
        regular, light = ICON_COLORS[icon]
        colour = colour_arg or (
            regular if abs(_luminance(regular) - background) >= abs(_luminance(light) - background) else light
        )
        return _paste(image, draw_icon(icon, box[2] - box[0], colour), box)

    return apply_edit(
        tool="add_icon",
        image_id=image_id,
        region=region,
        args={"icon": icon, "color": color},
        edit=edit,
        config=config,
    )
