"""Text tools: replace the words of a text region, or add a headline or caption with automatic contrast.

`replace_text` erases the old text where OCR found it (only the glyph pixels, inpainted from their
surroundings, so a photo or gradient behind the text survives, with any band of an old background left around
them by a background replacement) and renders the new text in the old text's colour (white or near-black where
that would not be readable on what now lies behind it) and size, centred where the old text was and shrunk only
if it would not fit the region. `add_text`
fits a headline or caption into a region and picks a colour that contrasts with what lies behind it.

Font handling lives here (`load_font`, `fit_font_size`, `draw_text`) and is shared with the graphics tools;
the erase of the old glyphs is `pixplan.tools.text_erase`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import ToolException, tool
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from pixplan.tools.classical import parse_color
from pixplan.tools.editing import apply_edit
from pixplan.tools.perception import ocr_lines_in, read_line
from pixplan.tools.regions import (
    RegionArg,
    RegionCatalog,
    RegionError,
    box_to_pixels,
    catalog_entry,
    nonzero_bounds,
    parse_region,
)
from pixplan.tools.store import ImageRef, store_from_config
from pixplan.tools.text_erase import erase_text

#: The bold sans-serif font used for all rendered text where Debian's fonts-dejavu-core is installed.
FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
#: Space between lines of multi-line text, as a fraction of the font size.
LINE_SPACING = 0.2
Effect = Literal["auto", "none", "shadow", "outline"]

#: Least WCAG contrast ratio between replaced text and what lies behind it (WCAG AA for normal text).
MIN_CONTRAST_RATIO = 4.5

_DARK = (20, 20, 20)
_LIGHT = (255, 255, 255)


# ------------------------------------------------------------------------------------------------- fonts


@functools.lru_cache(maxsize=128)
def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A bold font at `size` pixels: DejaVu Sans Bold when present, else Pillow's scalable default font."""
    size = max(1, int(size))
    if FONT_PATH.exists():
        return ImageFont.truetype(str(FONT_PATH), size)
    return ImageFont.load_default(size)


_MEASURE = ImageDraw.Draw(Image.new("L", (1, 1)))


def text_bbox(text: str, size: int, stroke_width: int = 0) -> tuple[int, int, int, int]:
    """Ink bounds (left, top, right, bottom) of `text` (lines split at newlines) drawn at (0, 0) at `size`."""
    return _MEASURE.multiline_textbbox(
        (0, 0),
        text,
        font=load_font(size),
        spacing=round(LINE_SPACING * size),
        align="center",
        stroke_width=stroke_width,
    )


def fit_font_size(text: str, width: float, height: float, max_size: int, stroke: float = 0.0) -> int:
    """The largest font size (at most `max_size`) at which `text` fits in width x height pixels.

    `stroke` is an outline width as a fraction of the font size, included in the measurement.
    """
    reference = 100
    left, top, right, bottom = text_bbox(text, reference, round(stroke * reference))
    scale = min(width / max(right - left, 1), height / max(bottom - top, 1))
    size = max(1, min(max_size, int(reference * scale)))
    while size > 1:
        left, top, right, bottom = text_bbox(text, size, round(stroke * size))
        if right - left <= width and bottom - top <= height:
            break
        size = max(1, int(size * 0.95))
    return size


def draw_text(
    layer: Image.Image,
    text: str,
    centre: tuple[float, float],
    size: int,
    color: tuple[int, int, int],
    effect: Literal["none", "shadow", "outline"] = "none",
) -> Image.Image:
    """Draw `text` on an RGBA `layer` with its ink centred on `centre`; returns the layer.

    `shadow` adds a soft dark (or light, under dark text) drop shadow, `outline` a contrasting stroke.
    """
    stroke = max(1, round(size / 14)) if effect == "outline" else 0
    left, top, right, bottom = text_bbox(text, size, stroke)
    origin = (centre[0] - (left + right) / 2, centre[1] - (top + bottom) / 2)
    contrast = _DARK if _luminance(color) > 0.5 else _LIGHT
    font = load_font(size)
    spacing = round(LINE_SPACING * size)
    if effect == "shadow":
        shadow = Image.new("RGBA", layer.size, (*contrast, 0))
        offset = max(1, round(size / 16))
        ImageDraw.Draw(shadow).multiline_text(
            (origin[0] + offset, origin[1] + offset),
            text,
            font=font,
            fill=(*contrast, 170),
            spacing=spacing,
            align="center",
        )
        layer = Image.alpha_composite(layer, shadow.filter(ImageFilter.GaussianBlur(max(1.0, size / 20))))
    ImageDraw.Draw(layer).multiline_text(
        origin,
        text,
        font=font,
        fill=(*color, 255),
        spacing=spacing,
        align="center",
        stroke_width=stroke,
        stroke_fill=(*contrast, 255),
    )
    return layer


def contrast_ratio(
    first: tuple[int, int, int] | np.ndarray, second: tuple[int, int, int] | np.ndarray
) -> float:
    """WCAG 2 contrast ratio (1..21) of two sRGB colours, from their linear-light relative luminance."""

    def luminance(color: tuple[int, int, int] | np.ndarray) -> float:
        channels = np.asarray(color[:3], dtype=np.float64) / 255.0
        linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
        return float(linear @ np.array([0.2126, 0.7152, 0.0722]))

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def readable_color(color: tuple[int, int, int], backdrop: np.ndarray) -> tuple[int, int, int]:
    """`color`, or white / near-black (whichever contrasts more) where `color` would not be readable on the
    median of `backdrop` (N x 3 or H x W x 3 RGB): an old text colour kept on a replaced background (dark words
    once on a light panel, now on black) would vanish."""
    behind = np.median(backdrop.reshape(-1, 3), axis=0)
    if contrast_ratio(color, behind) >= MIN_CONTRAST_RATIO:
        return color
    return max((_LIGHT, _DARK), key=lambda option: contrast_ratio(option, behind))


def _luminance(color: tuple[int, int, int] | np.ndarray) -> float:
    """Relative luminance 0..1 of an sRGB colour (Rec. 709 weights on gamma-encoded values: good enough)."""
    red, green, blue = (float(channel) / 255.0 for channel in color[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


# --------------------------------------------------------------------------------------------- placement


def placement_box(mask: np.ndarray, aspect: float | None = None) -> tuple[int, int, int, int]:
    """Pixel bounds (left, top, right, bottom) where something placed "in" a region should go.

    A box-like region is its bounding box; for other shapes (the background around a product, an object's
    mask) it is the rectangle inside the mask, found on a coarse grid, that holds the largest content of
    width/height ratio `aspect` (or, without one, the largest rectangle).
    """
    bounds = nonzero_bounds(mask > 0.5)
    if bounds is None:
        raise ToolException("the region is empty on this image")
    if box_like(mask):
        return bounds
    left, top, right, bottom = bounds
    inside = mask[top:bottom, left:right] > 0.5
    scale = min(1.0, 96 / max(inside.shape))
    grid_size = (max(1, round(inside.shape[1] * scale)), max(1, round(inside.shape[0] * scale)))
    grid = cv2.resize(inside.astype(np.float32), grid_size, interpolation=cv2.INTER_AREA) > 0.99
    x0, y0, x1, y1 = _largest_rectangle(grid, aspect)
    if x1 <= x0:
        return bounds
    sx, sy = inside.shape[1] / grid.shape[1], inside.shape[0] / grid.shape[0]
    return (
        left + int(np.ceil(x0 * sx)),
        top + int(np.ceil(y0 * sy)),
        left + int(x1 * sx),
        top + int(y1 * sy),
    )


def box_like(mask: np.ndarray) -> bool:
    """Whether a region is (almost) its bounding box: a box or a text line, not the background or an object's
    shape. Something placed in a box fills it; in a shape it takes a free rectangle inside it."""
    bounds = nonzero_bounds(mask > 0.5)
    if bounds is None:
        return False
    left, top, right, bottom = bounds
    return bool((mask[top:bottom, left:right] > 0.5).mean() >= 0.95)


def free_space(mask: np.ndarray, catalog: RegionCatalog | None, region: object) -> np.ndarray:
    """The region's mask less the catalog's text lines (grown a little), so that new things do not cover
    existing text; the region itself where that would leave (almost) nothing, or where it is a text region."""
    if catalog is None:
        return mask
    parsed = parse_region(region)
    if parsed.kind == "catalog" and catalog_entry(catalog, parsed.catalog_id or "")["kind"] == "text":
        return mask
    height, width = mask.shape
    free = mask.copy()
    for entry in catalog["regions"]:
        if entry["kind"] == "text":
            left, top, right, bottom = box_to_pixels(entry["box"], (width, height))
            grow = max(2, (bottom - top) // 3)
            free[max(0, top - grow) : bottom + grow, max(0, left - grow) : right + grow] = 0
    return free if free.sum() >= 0.25 * mask.sum() else mask


def _largest_rectangle(grid: np.ndarray, aspect: float | None = None) -> tuple[int, int, int, int]:
    """The all-true axis-aligned rectangle of a boolean grid, as (x0, y0, x1, y1), that is largest, or that
    holds the largest content of width/height ratio `aspect` (histogram method over all maximal rectangles)."""

    def score(width: int, height: int) -> float:
        if aspect is None:
            return float(width * height)
        fitted = min(float(width), aspect * height)
        return fitted * fitted / aspect

    heights = np.zeros(grid.shape[1] + 1, dtype=np.int64)  # the last column stays 0: a sentinel
    # Among rectangles that hold the same content, the larger wins: what is centred in it then sits in the
    # middle of the free area (a free column's first square would put it at the column's top).
    best, best_box = (0.0, 0), (0, 0, 0, 0)
    for row in range(grid.shape[0]):
        heights[:-1] = np.where(grid[row], heights[:-1] + 1, 0)
        stack: list[tuple[int, int]] = []  # (start column, height), heights increasing
        for column, height in enumerate(heights.tolist()):
            start = column
            while stack and stack[-1][1] >= height:
                start, top_height = stack.pop()
                value = (score(column - start, top_height), (column - start) * top_height)
                if value > best:
                    best, best_box = value, (start, row - top_height + 1, column, row + 1)
            stack.append((start, height))
    return best_box


# --------------------------------------------------------------------------------------------- tools


def _text_boxes(
    image: Image.Image, image_id: str, mask: np.ndarray, region: object, catalog: RegionCatalog | None
) -> list[tuple[tuple[int, int, int, int], str]]:
    """Pixel boxes and strings of the text lines to replace: the catalog's OCR box for a text region,
    else the lines OCR reads inside the region."""
    parsed = parse_region(region)
    if parsed.kind == "catalog":
        entry = catalog_entry(catalog, parsed.catalog_id or "")
        if entry["kind"] == "text":
            box = box_to_pixels(entry["box"], image.size)
            if catalog is not None and catalog["image_id"] == image_id:
                return [(box, entry.get("text", ""))]
            # The catalog was read on the original image; an earlier edit may have changed the words since.
            return [(box, read_line(image, box) or entry.get("text", ""))]

    bounds = nonzero_bounds(mask) or (0, 0, image.width, image.height)
    return [
        (
            (
                int(line["box"][0]),
                int(line["box"][1]),
                int(np.ceil(line["box"][2])),
                int(np.ceil(line["box"][3])),
            ),
            line["text"],
        )
        for line in ocr_lines_in(image, bounds)
    ]


def _margin(image: Image.Image) -> int:
    """Pixels kept clear of a region's edge so that the feathered blend never fades what is drawn."""
    return max(2, round(0.006 * min(image.size)) + 1)


@tool(parse_docstring=True, response_format="content_and_artifact")
def replace_text(
    image_id: str,
    region: RegionArg,
    text: str,
    color: str | None = None,
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Replace the words of a text region (a slogan, price or caption) with new text in the same style.

    The old text is erased (its letters are filled in from their surroundings) and the new text is drawn in the
    old text's colour (white or near-black where that would be hard to read) and size, centred where the old
    text was; a longer text is shrunk to fit the region. Use a
    text region id from the catalog; a box or other region is read with OCR to find the text inside it.
    The region is the text to replace: a text region of the catalog, or a box around the text.

    Args:
        image_id: Id of the image to edit.
        text: The new text. Use a newline for a line break.
        color: Colour of the new text as a CSS name ('white', 'forestgreen') or hex code ('#2e8b57'); default: the old text's colour.
    """
    text = text.strip()
    if not text:
        raise ToolException("replace_text needs a non-empty `text`; to only erase text use remove_object")
    rgb = parse_color(color) if color is not None else None
    try:
        parse_region(region)
    except RegionError as error:
        raise ToolException(str(error)) from None
    # OCR boxes can clip the outermost strokes: the erase reaches `pad` pixels beyond them, and the region grows
    # as much so that the (hard-edged) blend keeps every changed pixel; nothing else changes, so no seam shows.
    pad = _erase_pad(config, image_id)

    def edit(image: Image.Image, mask: np.ndarray, catalog: RegionCatalog | None) -> Image.Image:
        try:
            lines = _text_boxes(image, image_id, mask, region, catalog)
        except RegionError as error:
            raise ToolException(str(error)) from None
        if not lines:
            raise ToolException(
                f"no text found in region {region!r}; pick a text region from the catalog, or use add_text"
            )
        array = np.array(image)
        erased = [erase_text(array, box, pad) for box, _ in lines]
        # The largest line sets the colour; the glyphs of all lines set the size and the centre.
        main = max(range(len(lines)), key=lambda index: _area(lines[index][0]))
        ink = _union([ink_box for _, ink_box in erased])
        fill = rgb or readable_color(erased[main][0], array[ink[1] : ink[3], ink[0] : ink[2]])
        old = "\n".join(old_text for _, old_text in lines if old_text)
        ink_height = ink[3] - ink[1]
        size = fit_font_size(old, ink[2] - ink[0], ink_height, max_size=4 * ink_height) if old else ink_height
        # Room for the new text: the region, less a margin where the blend feathers.
        bounds = _union([box for box, _ in lines] + [nonzero_bounds(mask) or ink])
        margin = _margin(image)
        room_width = bounds[2] - bounds[0] - 2 * margin
        room_height = max(bounds[3] - bounds[1] - 2 * margin, ink_height)
        size = min(size, fit_font_size(text, room_width, room_height, max_size=size))
        centre = ((ink[0] + ink[2]) / 2, (ink[1] + ink[3]) / 2)
        layer = draw_text(Image.new("RGBA", image.size, (0, 0, 0, 0)), text, centre, size, fill)
        return Image.alpha_composite(Image.fromarray(array).convert("RGBA"), layer).convert("RGB")

    return apply_edit(
        tool="replace_text",
        image_id=image_id,
        region=region,
        args={"text": text, "color": color},
        edit=edit,
        config=config,
        feather_radius=0,
        grow=pad,
    )


def _erase_pad(config: RunnableConfig, image_id: str) -> int:
    """How far beyond an OCR box text is erased: 2% of the image's shorter side, at least 4 pixels."""
    store = store_from_config(config)
    if image_id not in store:
        return 4  # apply_edit reports the unknown image
    ref = store.ref(image_id)
    return max(4, round(0.02 * min(ref["width"], ref["height"])))


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _union(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    return (
        min(box[0] for box in boxes),
        min(box[1] for box in boxes),
        max(box[2] for box in boxes),
        max(box[3] for box in boxes),
    )


def _wrappings(text: str, max_lines: int = 3) -> list[str]:
    """The text as written, and greedy wraps of its words into 2..max_lines balanced lines."""
    if "\n" in text:
        return [text]
    words = text.split()
    options = [text]
    for count in range(2, min(max_lines, len(words)) + 1):
        target = len(text) / count
        lines, current = [], ""
        for word in words:
            if current and len(current) + 1 + len(word) > target * 1.15 and len(lines) < count - 1:
                lines.append(current)
                current = word
            else:
                current = f"{current} {word}".strip()
        lines.append(current)
        options.append("\n".join(lines))
    return options


def contrasting_color(rgb: np.ndarray) -> tuple[int, int, int]:
    """White on dark pixels, near-black on light ones (by the mean luminance of `rgb`, N x 3)."""
    return _DARK if _luminance(np.median(rgb.reshape(-1, 3), axis=0)) > 0.55 else _LIGHT


@tool(parse_docstring=True, response_format="content_and_artifact")
def add_text(
    image_id: str,
    region: RegionArg,
    text: str,
    color: str | None = None,
    effect: Effect = "auto",
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Add a headline, slogan or caption, fitted to a region as large as it goes and centred in it.

    The text is wrapped onto up to three lines where that lets it be larger. Without a colour, it is white on
    dark backgrounds and near-black on light ones. For a region that is not a box (such as 'background'), the
    text goes in the largest free rectangle of that region.
    The region is where the text goes (a wide, flat box for one line).

    Args:
        image_id: Id of the image to edit.
        text: The text to write. Use a newline for a line break.
        color: Text colour as a CSS name ('white', 'gold') or hex code ('#2e8b57'); default: automatic contrast.
        effect: 'shadow' (soft drop shadow), 'outline' (contrasting stroke), 'none', or 'auto' (an outline when the background is busy).
    """
    text = text.strip()
    if not text:
        raise ToolException("add_text needs a non-empty `text`")
    rgb = parse_color(color) if color is not None else None

    def edit(image: Image.Image, mask: np.ndarray, catalog: RegionCatalog | None) -> Image.Image:
        free = free_space(mask, catalog, region)
        # Never larger than a tenth of the image's height: a caption in 'background' should not fill it.
        cap = max(8, round(0.1 * image.height))
        stroke = 1 / 14 if effect == "outline" else 0.0
        best = None
        for option in _wrappings(text):
            left, top, right, bottom = text_bbox(option, 100)
            box = placement_box(free, aspect=(right - left) / max(bottom - top, 1))
            margin = _margin(image) + round(0.06 * min(box[2] - box[0], box[3] - box[1]))
            room = (box[2] - box[0] - 2 * margin, box[3] - box[1] - 2 * margin)
            if min(room) < 4:
                continue
            size = fit_font_size(option, room[0], room[1], max_size=cap, stroke=max(stroke, 1 / 14))
            if best is None or size > best[0]:
                best = (size, option, box)
        if best is None:
            raise ToolException("the region is too small for text; use a larger region or box")
        size, layout, (left, top, right, bottom) = best
        behind = np.asarray(image)[top:bottom, left:right]
        fill = rgb or contrasting_color(behind)
        chosen = effect
        if chosen == "auto":
            gray = cv2.cvtColor(behind, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
            # Busy (textured) or low-contrast backgrounds get an outline so the text stays legible.
            low_contrast = abs(_luminance(fill) - float(gray.mean())) < 0.35
            chosen = "outline" if gray.std() > 0.12 or low_contrast else "none"
        layer = draw_text(
            Image.new("RGBA", image.size, (0, 0, 0, 0)),
            layout,
            ((left + right) / 2, (top + bottom) / 2),
            size,
            fill,
            chosen,
        )
        return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")

    return apply_edit(
        tool="add_text",
        image_id=image_id,
        region=region,
        args={"text": text, "color": color, "effect": effect},
        edit=edit,
        config=config,
    )
