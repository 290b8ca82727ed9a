"""The one place where a tool's pixel edit meets the store, the region and the blend.

Every tool (classical or generative) describes only how to change pixels; `apply_edit` loads the image, resolves
the region against the image's catalog, blends the edit back through a feathered mask so nothing outside the
region changes, stores the result with its lineage and returns the LangChain ``(content, artifact)`` pair.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from langchain_core.tools import ToolException
from PIL import Image

from pixplan.tools.regions import (
    Region,
    RegionCatalog,
    RegionError,
    blend_arrays,
    default_feather,
    feather,
    load_catalog,
    nonzero_bounds,
    parse_region,
    region_mask,
)
from pixplan.tools.store import ImageError, ImageRef, ImageStore, store_from_config

#: edit(image, hard_mask, catalog) -> edited full-size image (only pixels inside the mask are kept).
EditFunction = Callable[[Image.Image, np.ndarray, "RegionCatalog | None"], Image.Image]
#: The same on arrays: edit(rgb, hard_mask, catalog) -> edited H x W x 3 uint8 array. `rgb` is read-only.
#: Pixel-arithmetic tools use this form: it spares four Pillow/NumPy copies per call.
ArrayEditFunction = Callable[[np.ndarray, np.ndarray, "RegionCatalog | None"], np.ndarray]


def load_for_edit(store: ImageStore, image_id: str) -> Image.Image:
    """Load the image a tool edits, as a clear tool error when the id is unknown."""
    if image_id not in store:
        raise ToolException(f"unknown image_id {image_id!r}: pass the id of the current image")
    return store.get(image_id).convert("RGB")


def apply_edit(
    *,
    tool: str,
    image_id: str,
    region: object,
    args: dict[str, Any],
    edit: EditFunction | None = None,
    config: Any,
    edit_array: ArrayEditFunction | None = None,
    feather_radius: float | None = None,
    grow: int = 0,
) -> tuple[str, ImageRef]:
    """Run `edit` inside `region` of the stored image and store the blended result.

    Args:
        tool: name of the calling tool (recorded in the lineage).
        image_id: image to edit.
        region: the tool's region argument (catalog id, box, mask reference, 'whole', 'background').
        args: the tool's other arguments, recorded in the lineage.
        edit: the pixel edit, on a Pillow image.
        config: the tool call's RunnableConfig (gives the store).
        edit_array: the pixel edit on arrays, instead of `edit`.
        feather_radius: soft edge in pixels; None picks a default from the image size, 0 keeps hard edges.
        grow: dilate the region's mask by this many pixels before editing and blending (object removal uses it
            to cover an object's outline).
    """
    if (edit is None) == (edit_array is None):
        raise TypeError("apply_edit needs exactly one of `edit` and `edit_array`")
    store = store_from_config(config)
    if image_id not in store:
        raise ToolException(f"unknown image_id {image_id!r}: pass the id of the current image")
    try:
        pixels = store.get_array(image_id)
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            pixels = np.asarray(load_for_edit(store, image_id))
    except ImageError as error:
        raise ToolException(str(error)) from None
    size = (pixels.shape[1], pixels.shape[0])
    try:
        parsed: Region = parse_region(region)
        catalog = load_catalog(store, image_id)
        mask = region_mask(parsed, size, catalog=catalog, store=store)
    except RegionError as error:
        raise ToolException(str(error)) from None
    if grow > 0 and parsed.kind != "whole":
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        mask = cv2.dilate(mask, kernel)
    if edit_array is not None:
        edited = edit_array(pixels, mask, catalog)
    else:
        edited_image = edit(Image.fromarray(pixels), mask, catalog)
        edited = np.asarray(edited_image if edited_image.mode == "RGB" else edited_image.convert("RGB"))
    if edited.shape != pixels.shape:
        raise ValueError(f"{tool}: the edit returned a {edited.shape} image for a {pixels.shape} one")
    radius = default_feather(size) if feather_radius is None else feather_radius
    if parsed.kind == "whole":
        result = edited
        bounds = (0, 0, size[0], size[1])
    else:
        soft = feather(mask, radius)
        result = blend_arrays(pixels, edited, soft)
        bounds = nonzero_bounds(soft) or (0, 0, 0, 0)
    ref = store.put_array(result, parent=image_id, tool=tool, args={"region": parsed.to_arg(), **args})
    changed = _changed_pixels(pixels, result, bounds) / (size[0] * size[1])
    content = (
        f"{tool} applied to {parsed.describe()}: new image_id {ref['id']} ({changed:.0%} of pixels changed)"
    )
    return content, ref


def _changed_pixels(before: np.ndarray, after: np.ndarray, bounds: tuple[int, int, int, int]) -> int:
    """How many pixels differ inside `bounds` (outside them the blend copies the original exactly)."""
    left, top, right, bottom = bounds
    if right <= left or bottom <= top:
        return 0
    difference = cv2.absdiff(before[top:bottom, left:right], after[top:bottom, left:right])
    # Sum of the channels, saturated to 8 bit: nonzero exactly where any channel differs.
    return int(cv2.countNonZero(cv2.transform(difference, np.ones((1, 3), dtype=np.float32))))
