"""Classical editing tools: colour, tone, background, object removal, style, blur and sharpen.

Pillow, NumPy and OpenCV only: always available, CPU, offline, deterministic. Each tool describes how pixels
change; `apply_edit` loads the image, resolves the region, blends the result back through a feathered mask and
stores it with its lineage. Pixel operations are vectorised (OpenCV colour conversions and look-up tables,
float32 NumPy) and computed only inside the region's bounding box.

Over 500 lines because it holds seven tools, each with its pixel function beside it (docstrings included,
which are the tools' descriptions); splitting them further would separate a tool from the code it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import cv2
import numpy as np
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import ToolException, tool
from PIL import ImageColor
from pydantic import Field

from pixplan.tools.editing import apply_edit
from pixplan.tools.regions import RegionArg, RegionCatalog, nonzero_bounds
from pixplan.tools.store import ImageRef

Strength = Annotated[float, Field(ge=0.0, le=1.0)]
Amount = Annotated[float, Field(ge=-1.0, le=1.0)]

# ---------------------------------------------------------------------------------------------- helpers


def parse_color(value: str) -> tuple[int, int, int]:
    """A CSS colour name ('forestgreen') or hex code ('#2e8b57') as RGB, or a clear tool error."""
    try:
        rgb = ImageColor.getrgb(value.strip())
    except (ValueError, AttributeError):
        raise ToolException(
            f"unknown colour {value!r}: use a CSS colour name such as 'forestgreen' or a hex code like '#2e8b57'"
        ) from None
    return rgb[0], rgb[1], rgb[2]


def in_box(
    operation: Callable[[np.ndarray, np.ndarray], np.ndarray], margin: int = 0
) -> Callable[[np.ndarray, np.ndarray, RegionCatalog | None], np.ndarray]:
    """An `apply_edit` array edit that runs `operation(rgb_crop, mask_crop) -> rgb_crop` on the mask's bounding
    box (grown by `margin` pixels of context) and leaves the rest of the image as it is."""

    def edit(rgb: np.ndarray, mask: np.ndarray, catalog: RegionCatalog | None) -> np.ndarray:
        out = np.array(rgb)
        bounds = nonzero_bounds(mask, margin=margin)
        if bounds is not None:
            left, top, right, bottom = bounds
            out[top:bottom, left:right] = operation(rgb[top:bottom, left:right], mask[top:bottom, left:right])
        return out

    return edit


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(values + 0.5, 0, 255).astype(np.uint8)


def _mix(original: np.ndarray, edited: np.ndarray, strength: float) -> np.ndarray:
    """Blend two uint8 images: `strength` 1 takes `edited`."""
    if strength >= 1.0:
        return edited
    return cv2.addWeighted(edited, strength, original, 1.0 - strength, 0.0)


# ---------------------------------------------------------------------------------------------- recolour


def recolor_lut(
    hsv_mean: tuple[float, float], target: tuple[int, int, int] | None, hue_shift: float
) -> np.ndarray:
    """The (256, 1, 3) look-up table on 8-bit full-range HSV (hue 0..255 for 0..360 degrees) of a recolour.

    Hue becomes the target's (or rotates); saturation and brightness move so that their means reach the
    target's while variations around the mean, the region's shading and texture, are kept.
    """
    levels = np.arange(256, dtype=np.float32)
    if target is None:
        hue = np.mod(np.round(levels + hue_shift * 256 / 360), 256).astype(np.uint8)
        return np.stack([hue, levels.astype(np.uint8), levels.astype(np.uint8)], axis=-1).reshape(256, 1, 3)
    pixel = np.array([[target]], dtype=np.uint8)
    target_hsv = cv2.cvtColor(pixel, cv2.COLOR_RGB2HSV_FULL)[0, 0]
    target_hue, target_saturation, target_value = (float(channel) for channel in target_hsv)
    mean_saturation, mean_value = hsv_mean
    hue = np.full(256, target_hue, dtype=np.float32)
    saturation = levels + (target_saturation - mean_saturation)
    contrast = max(target_value / max(mean_value, 1.0), 0.35)
    value = target_value + (levels - mean_value) * contrast
    return _to_uint8(np.stack([hue, saturation, value], axis=-1)).reshape(256, 1, 3)


def recolor_pixels(
    rgb: np.ndarray, mask: np.ndarray, target: tuple[int, int, int] | None, hue_shift: float, strength: float
) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)
    inside = (mask > 0.5).astype(np.uint8)
    mean = cv2.mean(hsv, mask=inside) if cv2.countNonZero(inside) else cv2.mean(hsv)
    lut = recolor_lut((mean[1], mean[2]), target, hue_shift)
    recoloured = cv2.cvtColor(cv2.LUT(hsv, lut), cv2.COLOR_HSV2RGB_FULL)
    return _mix(rgb, recoloured, strength)


@tool(parse_docstring=True, response_format="content_and_artifact")
def recolor(
    image_id: str,
    region: RegionArg,
    color: str | None = None,
    hue_shift: Annotated[float, Field(ge=-180.0, le=180.0)] = 0.0,
    strength: Strength = 1.0,
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Recolour a region to a target colour, or rotate its hues, keeping its shading and texture.

    Give either `color` (the region takes that colour's hue and its mean saturation and brightness move to the
    colour's, with light and shadow kept) or `hue_shift` (every hue rotates by that many degrees).

    Args:
        image_id: Id of the image to edit.
        color: Target colour as a CSS name ('forestgreen', 'gold') or hex code ('#2e8b57').
        hue_shift: Degrees to rotate hues by (-180..180), used when no colour is given.
        strength: How far to go, 0 (no change) to 1 (fully).
    """
    if color is None and hue_shift == 0.0:
        raise ToolException("recolor needs a target `color` (e.g. 'forestgreen') or a nonzero `hue_shift`")
    target = parse_color(color) if color is not None else None

    return apply_edit(
        tool="recolor",
        image_id=image_id,
        region=region,
        args={"color": color, "hue_shift": hue_shift, "strength": strength},
        edit_array=in_box(lambda rgb, mask: recolor_pixels(rgb, mask, target, hue_shift, strength)),
        config=config,
    )


# ---------------------------------------------------------------------------------------------- tone


def tone_lut(brightness: float, contrast: float, warmth: float) -> np.ndarray:
    """One (256, 1, 3) look-up table for brightness, then contrast, then warmth (RGB channel order)."""
    levels = np.arange(256, dtype=np.float32)
    if brightness >= 0:  # lift towards white without clipping highlights
        levels = levels + (255.0 - levels) * np.float32(brightness * 0.8)
    else:
        levels = levels * np.float32(1.0 + brightness * 0.8)
    levels = (levels - 127.5) * np.float32(1.0 + contrast) + 127.5
    shift = np.float32(warmth * 40.0)
    lut = np.stack([levels + shift, levels + shift * 0.25, levels - shift], axis=-1)
    return _to_uint8(lut).reshape(256, 1, 3)


def _saturate(rgb: np.ndarray, saturation: float) -> np.ndarray:
    """Scale colourfulness around each pixel's luma: -1 is gray, +1 doubles it."""
    gray = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(rgb, 1.0 + saturation, gray, -saturation, 0.0)


def tone_pixels(
    rgb: np.ndarray, brightness: float, contrast: float, saturation: float, warmth: float
) -> np.ndarray:
    if brightness or contrast or warmth:
        rgb = cv2.LUT(rgb, tone_lut(brightness, contrast, warmth))
    if saturation:
        rgb = _saturate(rgb, saturation)
    return rgb


@tool(parse_docstring=True, response_format="content_and_artifact")
def adjust_tone(
    image_id: str,
    region: RegionArg,
    brightness: Amount = 0.0,
    contrast: Amount = 0.0,
    saturation: Amount = 0.0,
    warmth: Amount = 0.0,
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Adjust brightness, contrast, saturation and colour temperature of a region.

    Each amount goes from -1 to 1; 0 leaves that property unchanged. Typical useful values are within ±0.5.

    Args:
        image_id: Id of the image to edit.
        brightness: Lighter (> 0) or darker (< 0).
        contrast: More contrast (> 0) or flatter (< 0; -1 is flat gray).
        saturation: More colourful (> 0) or more muted (< 0; -1 is grayscale).
        warmth: Warmer, towards orange (> 0), or cooler, towards blue (< 0).
    """
    if not (brightness or contrast or saturation or warmth):
        raise ToolException(
            "adjust_tone needs at least one nonzero amount: brightness, contrast, saturation or warmth"
        )

    return apply_edit(
        tool="adjust_tone",
        image_id=image_id,
        region=region,
        args={"brightness": brightness, "contrast": contrast, "saturation": saturation, "warmth": warmth},
        edit_array=in_box(lambda rgb, mask: tone_pixels(rgb, brightness, contrast, saturation, warmth)),
        config=config,
    )


# ---------------------------------------------------------------------------------------------- background

BackgroundFill = Literal["solid", "linear_gradient", "radial_gradient", "noise", "grain", "stripes", "dots"]


def _ramp(size: tuple[int, int], fill: str, angle: float) -> np.ndarray:
    """A 0..1 float32 field over the image: along `angle` (linear) or from the centre (radial)."""
    width, height = size
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    if fill == "radial_gradient":
        distance = np.sqrt(xs * xs + ys * ys) / np.float32(np.sqrt(0.5))
        return np.clip(distance, 0.0, 1.0)
    radians = np.deg2rad(angle)
    dx, dy = np.float32(np.cos(radians)), np.float32(np.sin(radians))
    projection = xs * dx + ys * dy  # -> (H, W) by broadcasting
    extent = (abs(dx) + abs(dy)) / 2
    return np.clip(projection / np.float32(2 * extent) + 0.5, 0.0, 1.0)


def background_pattern(
    size: tuple[int, int],
    fill: str,
    first: tuple[int, int, int],
    second: tuple[int, int, int],
    angle: float,
    scale: float,
    seed: int,
) -> np.ndarray:
    """An RGB uint8 image of the pattern: a field 0..1 that mixes `first` (0) and `second` (1)."""
    width, height = size
    period = max(scale * min(width, height), 2.0)  # feature size in pixels
    if fill == "solid":
        field = np.zeros((height, width), dtype=np.float32)
    elif fill in ("linear_gradient", "radial_gradient"):
        field = _ramp(size, fill, angle)
    elif fill == "noise":  # smooth value noise: a coarse random grid, bicubically enlarged
        rng = np.random.default_rng(seed)
        grid = rng.random(
            (max(int(height / period), 1) + 3, max(int(width / period), 1) + 3), dtype=np.float32
        )
        field = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        field = cv2.normalize(field, None, 0.0, 1.0, cv2.NORM_MINMAX)
    elif fill == "grain":  # fine film grain: the first colour speckled towards the second
        rng = np.random.default_rng(seed)
        field = np.clip(
            np.abs(rng.standard_normal((height, width), dtype=np.float32)) * np.float32(0.3), 0, 1
        )
    elif fill == "stripes":
        radians = np.deg2rad(angle)
        xs = np.arange(width, dtype=np.float32)[None, :] * np.float32(np.cos(radians))
        ys = np.arange(height, dtype=np.float32)[:, None] * np.float32(np.sin(radians))
        field = (np.mod(xs + ys, np.float32(period)) >= period / 2).astype(np.float32)
    else:  # dots: a grid of discs, anti-aliased over one pixel
        xs = np.mod(np.arange(width, dtype=np.float32), np.float32(period)) - np.float32(period / 2)
        ys = np.mod(np.arange(height, dtype=np.float32), np.float32(period)) - np.float32(period / 2)
        distance = np.sqrt(xs[None, :] ** 2 + ys[:, None] ** 2)
        field = np.clip(np.float32(period * 0.3) - distance + 0.5, 0.0, 1.0)
    # Colour by look-up: the field in 256 steps indexes a ramp from the first colour to the second.
    steps = np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None]
    ramp = _to_uint8(np.float32(first) + steps * (np.float32(second) - np.float32(first))).reshape(256, 1, 3)
    index = cv2.convertScaleAbs(field, alpha=255.0)
    return cv2.LUT(cv2.cvtColor(index, cv2.COLOR_GRAY2RGB), ramp)


@tool(parse_docstring=True, response_format="content_and_artifact")
def replace_background(
    image_id: str,
    region: RegionArg = "background",
    fill: BackgroundFill = "solid",
    color: str = "white",
    second_color: str | None = None,
    angle: Annotated[float, Field(ge=0.0, le=360.0)] = 90.0,
    scale: Annotated[float, Field(ge=0.005, le=0.5)] = 0.05,
    seed: Annotated[int, Field(ge=0)] = 0,
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Replace the background with a solid colour, a gradient or a procedural texture, keeping the product.

    Only the region changes (by default 'background': everything but the catalog's foreground objects and
    text), so the product, other foreground objects and the existing text stay as they are.
    The region is usually 'background'.

    Args:
        image_id: Id of the image to edit.
        fill: 'solid', 'linear_gradient', 'radial_gradient' (centre to corners), or a texture: 'noise' (soft clouds), 'grain' (fine film grain), 'stripes' or 'dots'.
        color: Main colour, a CSS name or hex code (gradient start, texture base).
        second_color: Second colour for gradients and textures (default: a darker shade of `color`).
        angle: Direction in degrees of a linear gradient or of stripes (0 left to right, 90 top to bottom).
        scale: Feature size of stripes, dots and noise, as a fraction of the image's shorter side.
        seed: Random seed for 'noise' and 'grain'.
    """
    first = parse_color(color)
    second = parse_color(second_color) if second_color is not None else tuple(int(c * 0.6) for c in first)

    def edit(rgb: np.ndarray, mask: np.ndarray, catalog: RegionCatalog | None) -> np.ndarray:
        return background_pattern((rgb.shape[1], rgb.shape[0]), fill, first, second, angle, scale, seed)

    return apply_edit(
        tool="replace_background",
        image_id=image_id,
        region=region,
        args={
            "fill": fill,
            "color": color,
            "second_color": second_color,
            "angle": angle,
            "scale": scale,
            "seed": seed,
        },
        edit_array=edit,
        config=config,
    )


# ---------------------------------------------------------------------------------------------- object removal

#: Largest hole, in pixels, inpainted at full resolution; larger ones are filled on a downscaled copy.
_INPAINT_MAX_HOLE = 40_000


def inpaint(rgb: np.ndarray, hole: np.ndarray, radius: int, method: str) -> np.ndarray:
    """Fill `hole` (uint8, 255 inside) of an RGB crop from its surroundings with OpenCV inpainting."""
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    area = int(cv2.countNonZero(hole))
    factor = min(1.0, float(np.sqrt(_INPAINT_MAX_HOLE / max(area, 1))))
    if factor >= 1.0:
        return cv2.inpaint(rgb, hole, radius, flag)
    # Big holes: inpaint a smaller copy (OpenCV's cost grows with hole area), then enlarge the fill.
    height, width = hole.shape
    small_size = (max(int(width * factor), 8), max(int(height * factor), 8))
    small = cv2.resize(rgb, small_size, interpolation=cv2.INTER_AREA)
    small_hole = (cv2.resize(hole, small_size, interpolation=cv2.INTER_AREA) > 0).astype(np.uint8) * 255
    filled = cv2.inpaint(small, small_hole, max(int(radius * factor), 2), flag)
    enlarged = cv2.resize(filled, (width, height), interpolation=cv2.INTER_CUBIC)
    out = rgb.copy()
    out[hole > 0] = enlarged[hole > 0]
    return out


@tool(parse_docstring=True, response_format="content_and_artifact")
def remove_object(
    image_id: str,
    region: RegionArg,
    method: Literal["telea", "ns"] = "telea",
    grow: Annotated[int, Field(ge=0, le=50)] = 4,
    inpaint_radius: Annotated[int, Field(ge=1, le=25)] = 5,
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Remove what is in a region and fill the hole from its surroundings (OpenCV inpainting).

    Works best on small objects, text or blemishes over plain or smoothly varying backgrounds; large holes
    come out smooth and blurry.
    The region is what to remove.

    Args:
        image_id: Id of the image to edit.
        method: 'telea' (fast marching, Telea 2004) or 'ns' (Navier-Stokes, Bertalmio 2001).
        grow: Pixels to grow the region by first, so the object's outline and shadow go too.
        inpaint_radius: Neighbourhood radius in pixels that each filled pixel is estimated from.
    """

    def fill(rgb: np.ndarray, crop_mask: np.ndarray) -> np.ndarray:
        return inpaint(rgb, (crop_mask > 0.5).astype(np.uint8) * 255, inpaint_radius, method)

    fill_box = in_box(fill, margin=2 * inpaint_radius + 2)

    def edit(rgb: np.ndarray, mask: np.ndarray, catalog: RegionCatalog | None) -> np.ndarray:
        if mask.min() > 0.5:
            raise ToolException(
                "remove_object needs a region smaller than the whole image: nothing is left to fill from"
            )
        return fill_box(rgb, mask, catalog)

    return apply_edit(
        tool="remove_object",
        image_id=image_id,
        region=region,
        args={"method": method, "grow": grow, "inpaint_radius": inpaint_radius},
        edit_array=edit,
        config=config,
        grow=grow,
    )


# ---------------------------------------------------------------------------------------------- style

#: Sepia colour matrix (rows give output R, G, B from input R, G, B).
_SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32)


def _vignette(shape: tuple[int, ...]) -> np.ndarray:
    height, width = shape[:2]
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    return np.clip(1.0 - 0.35 * (xs * xs + ys * ys) / 2.0, 0.0, 1.0)[..., None]


def stylize_pixels(rgb: np.ndarray, style: str, levels: int) -> np.ndarray:
    """The stylised version of an RGB uint8 array."""
    if style == "warm":
        return _saturate(cv2.LUT(rgb, tone_lut(0.03, 0.05, 0.6)), 0.15)
    if style == "cool":
        return _saturate(cv2.LUT(rgb, tone_lut(0.0, 0.05, -0.6)), -0.1)
    if style == "mono":
        return cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    if style == "posterize":
        step = 256 // levels
        lut = (np.arange(256) // step * step + step // 2).clip(0, 255).astype(np.uint8)
        return cv2.LUT(rgb, lut)
    # vintage: sepia toning, faded blacks, soft contrast, darker corners
    faded = cv2.LUT(rgb, tone_lut(0.08, -0.2, 0.0))
    sepia = cv2.transform(faded, _SEPIA)
    mixed = cv2.addWeighted(sepia, 0.75, faded, 0.25, 0.0).astype(np.float32)
    return _to_uint8(mixed * _vignette(rgb.shape))


@tool(parse_docstring=True, response_format="content_and_artifact")
def stylize(
    image_id: str,
    style: Literal["warm", "cool", "vintage", "mono", "posterize"],
    region: RegionArg = "whole",
    strength: Strength = 1.0,
    levels: Annotated[int, Field(ge=2, le=16)] = 4,
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Give the image or a region a photographic style: warm, cool, vintage (sepia, faded, vignette), mono or posterize.
    The region is usually 'whole'.

    Args:
        image_id: Id of the image to edit.
        style: 'warm' (golden light), 'cool' (blue, crisp), 'vintage' (sepia, faded, dark corners), 'mono' (black and white) or 'posterize' (few flat colour levels).
        strength: How strongly, 0 (no change) to 1 (fully).
        levels: Colour levels per channel for 'posterize'.
    """

    return apply_edit(
        tool="stylize",
        image_id=image_id,
        region=region,
        args={"style": style, "strength": strength, "levels": levels},
        edit_array=in_box(lambda rgb, mask: _mix(rgb, stylize_pixels(rgb, style, levels), strength)),
        config=config,
    )


# ---------------------------------------------------------------------------------------------- blur, sharpen


@tool(parse_docstring=True, response_format="content_and_artifact")
def blur(
    image_id: str,
    region: RegionArg,
    radius: Annotated[float, Field(gt=0.0, le=100.0)] = 8.0,
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Blur a region (Gaussian), e.g. to soften a busy background or hide a detail.

    Args:
        image_id: Id of the image to edit.
        radius: Blur strength in pixels (the Gaussian's standard deviation).
    """

    def operation(rgb: np.ndarray, crop_mask: np.ndarray) -> np.ndarray:
        if radius <= 3:
            return cv2.GaussianBlur(rgb, (0, 0), sigmaX=radius, sigmaY=radius, borderType=cv2.BORDER_REFLECT)
        # Stack blur: a close approximation of a Gaussian whose cost does not grow with the radius.
        size = 2 * int(np.ceil(2.5 * radius)) + 1
        return cv2.stackBlur(rgb, (size, size))

    return apply_edit(
        tool="blur",
        image_id=image_id,
        region=region,
        args={"radius": radius},
        edit_array=in_box(operation, margin=int(np.ceil(3 * radius))),
        config=config,
    )


@tool(parse_docstring=True, response_format="content_and_artifact")
def sharpen(
    image_id: str,
    region: RegionArg,
    amount: Annotated[float, Field(gt=0.0, le=5.0)] = 1.0,
    radius: Annotated[float, Field(ge=0.5, le=20.0)] = 2.0,
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Sharpen a region with an unsharp mask, to crisp up a product or text.

    Args:
        image_id: Id of the image to edit.
        amount: How much of the detail to add back (1 doubles fine detail).
        radius: Size in pixels of the detail that is enhanced (the Gaussian's standard deviation).
    """

    def operation(rgb: np.ndarray, crop_mask: np.ndarray) -> np.ndarray:
        smooth = cv2.GaussianBlur(rgb, (0, 0), sigmaX=radius, sigmaY=radius, borderType=cv2.BORDER_REFLECT)
        return cv2.addWeighted(rgb, 1.0 + amount, smooth, -amount, 0.0)

    return apply_edit(
        tool="sharpen",
        image_id=image_id,
        region=region,
        args={"amount": amount, "radius": radius},
        edit_array=in_box(operation, margin=int(np.ceil(3 * radius))),
        config=config,
    )


#: The classical tools defined here, in the order they are listed to a model.
CLASSICAL_TOOLS = [recolor, adjust_tone, replace_background, remove_object, stylize, blur, sharpen]
