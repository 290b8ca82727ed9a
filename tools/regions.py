"""Image regions: what a tool's `region` argument means, and how it becomes a pixel mask.

A region is one of:

- a catalog id such as ``"r3"``: a named region found by perception (text box, product, detection);
- a normalized box ``[x0, y0, x1, y1]`` with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 (fractions of width and
  height, origin top left);
- a mask reference ``"mask:<image id>"``: a stored grayscale image, white where the region is;
- ``"whole"``: the whole image;
- ``"background"``: everything except the region catalog's foreground objects and its text layer (`text_mask`:
  the glyphs, with their outline and any badge, pill or price tag that carries them, but not the plain
  background between and inside the letters), so that editing the background leaves the product and the words
  alone. A band or panel that reaches past a text line's neighbourhood (`TEXT_REACH` text heights around its
  grown box), such as a strip across most of the image's width, is background, not part of the text layer.

Everything invalid raises `RegionError` with a short message a model can act on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired

import cv2
import numpy as np
from PIL import Image
from pydantic import Field
from typing_extensions import TypedDict

from pixplan.tools.store import ImageError, ImageStore, is_image_id

#: The type of every tool's `region` argument, with the description the model reads.
RegionArg = Annotated[
    str | list[float],
    Field(
        description=(
            "Where to apply the edit: a region id from the region catalog (e.g. 'r2'), 'whole', 'background' "
            "(everything except the foreground object(s) and text), a normalized box [x0, y0, x1, y1] with "
            "values in 0..1 (origin top left), or 'mask:<image id>'."
        )
    ),
]

RegionKind = Literal["text", "object", "background", "whole"]
#: Text boxes grow by this fraction of their height where they are kept out of another region (`text_mask`).
TEXT_MARGIN = 1 / 3
#: Least distance (8-bit Lab units) from every background colour for a pixel to count as text (or its badge).
MIN_TEXT_CONTRAST = 12.0
#: The text layer grows by this many pixels so that the glyphs' anti-aliased edges stay with them.
TEXT_EDGE = 2
#: How far (in text heights) beyond its grown box a text line's badge may reach; a colour that reaches further
#: (a band across the image, the backdrop) is background. A round badge around a short word overhangs its box by
#: about 1.3 text heights, hence 2.
TEXT_REACH = 2
_CATALOG_ID = re.compile(r"^r\d+$")


class RegionError(ValueError):
    """A region argument is invalid or does not exist for this image."""


class CatalogRegion(TypedDict):
    """One named candidate region of an image."""

    id: str
    box: list[float]  # normalized [x0, y0, x1, y1]
    kind: RegionKind
    label: str
    text: NotRequired[str]  # the OCR string, for text regions
    score: NotRequired[float]
    mask: NotRequired[str]  # id of a stored grayscale mask, where the region is not a box


class RegionCatalog(TypedDict):
    """The enumerable regions of an image: what the orchestrator chooses from and rewards are computed over."""

    image_id: str
    width: int
    height: int
    regions: list[CatalogRegion]


@dataclass(frozen=True)
class Region:
    """A parsed, validated region argument."""

    kind: Literal["catalog", "box", "mask", "whole", "background"]
    catalog_id: str | None = None
    box: tuple[float, float, float, float] | None = None
    mask_id: str | None = None

    def describe(self) -> str:
        if self.kind == "catalog":
            return str(self.catalog_id)
        if self.kind == "box":
            return "[" + ", ".join(f"{value:.3f}" for value in self.box or ()) + "]"
        if self.kind == "mask":
            return f"mask:{self.mask_id}"
        return self.kind

    def to_arg(self) -> str | list[float]:
        """The JSON form of this region, as a tool argument."""
        if self.kind == "box":
            return list(self.box or ())
        return self.describe()


def validate_box(box: object) -> tuple[float, float, float, float]:
    """Check a normalized box; raise `RegionError` saying what is wrong."""
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise RegionError(f"a box needs 4 numbers [x0, y0, x1, y1], got {box!r}")
    try:
        x0, y0, x1, y1 = (float(value) for value in box)
    except (TypeError, ValueError):
        raise RegionError(f"a box needs 4 numbers [x0, y0, x1, y1], got {box!r}") from None
    if not all(np.isfinite([x0, y0, x1, y1])):
        raise RegionError(f"box values must be finite numbers, got {box!r}")
    if min(x0, y0, x1, y1) < 0.0 or max(x0, y0, x1, y1) > 1.0:
        raise RegionError(f"box values must lie in 0..1 (fractions of width and height), got {box!r}")
    if x0 >= x1 or y0 >= y1:
        raise RegionError(f"box is empty or inverted: need x0 < x1 and y0 < y1, got {box!r}")
    return (x0, y0, x1, y1)


def parse_region(value: object) -> Region:
    """Turn a tool's region argument into a `Region`, or raise a clear `RegionError`."""
    if isinstance(value, Region):
        return value
    if isinstance(value, list | tuple):
        return Region(kind="box", box=validate_box(value))
    if not isinstance(value, str):
        raise RegionError(f"region must be a string or a list of 4 numbers, got {type(value).__name__}")
    text = value.strip()
    lowered = text.lower()
    if lowered in ("whole", "all", "image", "whole image"):
        return Region(kind="whole")
    if lowered == "background":
        return Region(kind="background")
    if _CATALOG_ID.match(lowered):
        return Region(kind="catalog", catalog_id=lowered)
    if lowered.startswith("mask:"):
        mask_id = text[5:].strip()
        if not mask_id:
            raise RegionError("mask reference needs an image id: 'mask:<image id>'")
        if not is_image_id(mask_id):
            raise RegionError(f"mask:{mask_id[:80]} is not an image id: 'mask:<24 hex digits of a stored mask>'")
        return Region(kind="mask", mask_id=mask_id)
    if text.startswith("["):
        try:
            import json

            return Region(kind="box", box=validate_box(json.loads(text)))
        except ValueError as error:
            if isinstance(error, RegionError):
                raise
            raise RegionError(f"could not read box {text!r}; write it as [x0, y0, x1, y1]") from None
    raise RegionError(
        f"unknown region {value!r}: use a catalog id like 'r2', 'whole', 'background', "
        "a box [x0, y0, x1, y1] in 0..1, or 'mask:<image id>'"
    )


def box_to_pixels(
    box: tuple[float, float, float, float] | list[float], size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Normalized box to integer pixel bounds (left, top, right, bottom), never empty."""
    width, height = size
    x0, y0, x1, y1 = box
    left = min(int(np.floor(x0 * width)), width - 1)
    top = min(int(np.floor(y0 * height)), height - 1)
    right = max(int(np.ceil(x1 * width)), left + 1)
    bottom = max(int(np.ceil(y1 * height)), top + 1)
    return left, top, min(right, width), min(bottom, height)


def pixels_to_box(left: float, top: float, right: float, bottom: float, size: tuple[int, int]) -> list[float]:
    """Pixel bounds to a normalized box, clipped to the image."""
    width, height = size
    return [
        round(float(np.clip(left / width, 0, 1)), 4),
        round(float(np.clip(top / height, 0, 1)), 4),
        round(float(np.clip(right / width, 0, 1)), 4),
        round(float(np.clip(bottom / height, 0, 1)), 4),
    ]


def _box_mask(box: tuple[float, float, float, float] | list[float], size: tuple[int, int]) -> np.ndarray:
    width, height = size
    mask = np.zeros((height, width), dtype=np.float32)
    left, top, right, bottom = box_to_pixels(box, size)
    mask[top:bottom, left:right] = 1.0
    return mask


def _stored_mask(store: ImageStore | None, mask_id: str, size: tuple[int, int]) -> np.ndarray:
    if store is None or mask_id not in store:
        raise RegionError(f"unknown mask image {mask_id!r}")
    try:
        mask = store.get(mask_id).convert("L")
    except ImageError as error:
        raise RegionError(f"mask:{mask_id}: {error}") from None
    if mask.size != size:
        mask = mask.resize(size, Image.Resampling.NEAREST)
    return (np.asarray(mask, dtype=np.float32) / 255.0 > 0.5).astype(np.float32)


def catalog_entry(catalog: RegionCatalog | None, region_id: str) -> CatalogRegion:
    """Look a region up by id, with the known ids in the error."""
    if catalog is None:
        raise RegionError(f"region {region_id!r} needs a region catalog, and this image has none")
    for entry in catalog["regions"]:
        if entry["id"] == region_id:
            return entry
    known = ", ".join(entry["id"] for entry in catalog["regions"]) or "none"
    raise RegionError(f"unknown region id {region_id!r}; this image has: {known}")


def _entry_mask(entry: CatalogRegion, size: tuple[int, int], store: ImageStore | None) -> np.ndarray:
    if entry["kind"] == "whole":
        return np.ones((size[1], size[0]), dtype=np.float32)
    if "mask" in entry:
        return _stored_mask(store, entry["mask"], size)
    return _box_mask(entry["box"], size)


def foreground_mask(
    catalog: RegionCatalog | None, size: tuple[int, int], store: ImageStore | None
) -> np.ndarray:
    """Union of the catalog's object regions; `background` excludes it and the catalog's `text_mask`."""
    objects = [entry for entry in (catalog or {"regions": []})["regions"] if entry["kind"] == "object"]
    if not objects:
        raise RegionError("'background' needs a foreground object in the region catalog, and none was found")
    mask = np.zeros((size[1], size[0]), dtype=np.float32)
    for entry in objects:
        mask = np.maximum(mask, _entry_mask(entry, size, store))
    return mask


def background_mask(
    catalog: RegionCatalog | None, size: tuple[int, int], store: ImageStore | None
) -> np.ndarray:
    """Everything except the catalog's objects (`foreground_mask`) and its text layer (`text_mask`), which is
    found on the catalog's image where `store` holds it, else (no pixels to look at) the grown text boxes."""
    objects = foreground_mask(catalog, size, store)
    regions = catalog["regions"] if catalog else []
    rgb = None
    if catalog is not None and store is not None and catalog["image_id"] in store:
        image = store.get(catalog["image_id"]).convert("RGB")
        rgb = np.asarray(image if image.size == size else image.resize(size, Image.Resampling.BILINEAR))
    return 1.0 - np.maximum(objects, text_mask(regions, size, rgb))


def text_mask(
    regions: list[CatalogRegion], size: tuple[int, int], rgb: np.ndarray | None = None
) -> np.ndarray:
    """The text layer (H x W float32, 1 on it) of the ``text`` entries among `regions`.

    With the image's pixels (`rgb`, H x W x 3 uint8) it is each line's `text_pixels`: the glyphs and what
    carries them, not the background between them. Without them it is the union of the text boxes, each
    grown on every side by `text_margin`: OCR boxes can clip the outermost strokes, and nothing kept out of a
    region should be touched by its soft edge.
    """
    width, height = size
    boxes = [box_to_pixels(entry["box"], size) for entry in regions if entry["kind"] == "text"]
    if rgb is not None:
        lab = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2LAB)
        mask = np.zeros((height, width), dtype=np.uint8)
        for box in boxes:
            text_pixels(lab, box, mask)
        edge = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * TEXT_EDGE + 1,) * 2)
        return cv2.dilate(mask, edge).astype(np.float32)
    mask = np.zeros((height, width), dtype=np.float32)
    for left, top, right, bottom in boxes:
        grow = text_margin(bottom - top, size)
        mask[max(0, top - grow) : bottom + grow, max(0, left - grow) : right + grow] = 1.0
    return mask


def text_margin(line_height: int, size: tuple[int, int]) -> int:
    """How far (pixels) a text box grows where it is kept out of a region: `TEXT_MARGIN` of its height (at
    least 2 px) plus the reach of a tool's feathered edge (3 sigma = 1.5 feather radii)."""
    return max(2, round(TEXT_MARGIN * line_height)) + int(np.ceil(1.5 * default_feather(size)))


def edge_colours(edge: np.ndarray) -> np.ndarray:
    """The colours (k x 3 Lab centres, k <= 3) of a set of Lab pixels (N x 3 float32) that surround text: k-means
    with up to three clusters, each at least 5% of the pixels, so that an edge that straddles a band and its
    backdrop, or a gradient, knows all of them."""
    clusters = min(3, len(edge))
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 12, 0.5)
    _, labels, centres = cv2.kmeans(
        np.ascontiguousarray(edge, dtype=np.float32), clusters, None, criteria, 2, cv2.KMEANS_PP_CENTERS
    )
    counts = np.bincount(labels.ravel(), minlength=clusters)
    return centres[counts >= 0.05 * len(edge)]


def colour_distance(lab: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (Lab units) of every pixel of `lab` (H x W x 3 or N x 3 float32) to the nearest of `centres`
    (k x 3, k <= 3), and that centre's index."""
    shape = lab.shape[:-1]
    pixels = np.ascontiguousarray(lab, dtype=np.float32).reshape(-1, 1, 3)
    centres = np.asarray(centres, dtype=np.float32)
    # |p - c|^2 = |p|^2 + (|c|^2 - 2 p.c): the bracket, one channel per centre, is one affine cv2.transform.
    affine = np.hstack([-2 * centres, (centres**2).sum(axis=1, keepdims=True)])
    scores = cv2.transform(pixels, affine).reshape(len(pixels), -1)
    closest, nearest = scores[:, 0], np.zeros(len(pixels), dtype=np.intp)
    for index in range(1, len(centres)):  # k <= 3 columns: faster than numpy's min over a short axis
        score = scores[:, index]
        nearest[score < closest] = index
        closest = np.minimum(closest, score)
    closest += cv2.transform(pixels * pixels, np.ones((1, 3), np.float32)).ravel()
    return np.sqrt(np.maximum(closest, 0)).reshape(shape), nearest.reshape(shape)


def text_pixels(lab: np.ndarray, box: tuple[int, int, int, int], out: np.ndarray) -> None:
    """Mark (set to 1 in `out`, H x W uint8) the pixels of the text line in pixel `box` of an image (`lab`,
    H x W x 3 uint8 Lab, as OpenCV's COLOR_RGB2LAB gives it).

    The local background is the colours (`edge_colours`) of a thin ring just outside the box grown by
    `text_margin`, less any that do not also reach the edge of the line's neighbourhood (that grown box plus
    `TEXT_REACH` text heights on every side): those belong to something small that carries the text, such as a
    badge.
    The glyphs are the pixels in the box at least `MIN_TEXT_CONTRAST` from every background colour; they grow
    through connected pixels that differ as much, within the neighbourhood, so that an outline, badge, pill
    or price tag behind the text is kept whole, while counters and gaps of the background colour are not.
    """
    height, width = lab.shape[:2]
    left, top, right, bottom = box
    line = max(1, bottom - top)
    grow = text_margin(line, (width, height))
    reach = grow + TEXT_REACH * line
    x0, y0 = max(0, left - reach), max(0, top - reach)
    x1, y1 = min(width, right + reach), min(height, bottom + reach)
    crop = lab[y0:y1, x0:x1].astype(np.float32)
    # Offsets of the grown box inside the neighbourhood, and a ring `thin` pixels wide just outside it.
    thin = 3
    gx0, gy0 = max(0, left - grow - x0), max(0, top - grow - y0)
    gx1, gy1 = min(x1, right + grow) - x0, min(y1, bottom + grow) - y0
    ring = np.zeros(crop.shape[:2], dtype=bool)
    ring[max(0, gy0 - thin) : gy1 + thin, max(0, gx0 - thin) : gx1 + thin] = True
    ring[gy0:gy1, gx0:gx1] = False
    if not ring.any():  # the grown box covers the whole image: its own edge is all there is
        ring[[0, -1], :] = True
        ring[:, [0, -1]] = True
    centres = edge_colours(crop[ring])
    border = np.zeros(crop.shape[:2], dtype=bool)
    border[:thin, :] = border[-thin:, :] = True
    border[:, :thin] = border[:, -thin:] = True
    outer, nearest = colour_distance(crop[border], centres)
    # A ring colour is background where at least 2% of the neighbourhood's edge is near it.
    reaches = np.bincount(nearest[outer < MIN_TEXT_CONTRAST], minlength=len(centres)) >= 0.02 * len(outer)
    if reaches.any():
        centres = centres[reaches]
    distance, _ = colour_distance(crop, centres)
    differ = (distance > MIN_TEXT_CONTRAST).astype(np.uint8)
    count, labels = cv2.connectedComponents(differ, connectivity=8)
    seeds = labels[top - y0 : bottom - y0, left - x0 : right - x0]
    keep = np.zeros(count, dtype=bool)
    keep[np.unique(seeds)] = True
    keep[0] = False
    out[y0:y1, x0:x1] |= keep[labels].astype(np.uint8)


def region_mask(
    region: object,
    size: tuple[int, int],
    *,
    catalog: RegionCatalog | None = None,
    store: ImageStore | None = None,
) -> np.ndarray:
    """The hard mask (H x W float32, 1 inside) of a region on an image of `size` = (width, height)."""
    parsed = parse_region(region)
    width, height = size
    if parsed.kind == "whole":
        return np.ones((height, width), dtype=np.float32)
    if parsed.kind == "box":
        return _box_mask(parsed.box, size)
    if parsed.kind == "mask":
        mask = _stored_mask(store, parsed.mask_id or "", size)
    elif parsed.kind == "background":
        background = [e for e in (catalog or {"regions": []})["regions"] if e["kind"] == "background"]
        if background and "mask" in background[0]:
            mask = _entry_mask(background[0], size, store)
        else:
            mask = background_mask(catalog, size, store)
    else:
        mask = _entry_mask(catalog_entry(catalog, parsed.catalog_id or ""), size, store)
    if mask.sum() < 1:
        raise RegionError(f"region {parsed.describe()} is empty on this image")
    return mask


def nonzero_bounds(mask: np.ndarray, margin: int = 0) -> tuple[int, int, int, int] | None:
    """Pixel bounds (left, top, right, bottom) of a mask's nonzero pixels grown by `margin`, or None if empty."""
    rows = np.flatnonzero(mask.max(axis=1) > 0)
    if len(rows) == 0:
        return None
    columns = np.flatnonzero(mask.max(axis=0) > 0)
    height, width = mask.shape[:2]
    return (
        max(int(columns[0]) - margin, 0),
        max(int(rows[0]) - margin, 0),
        min(int(columns[-1]) + 1 + margin, width),
        min(int(rows[-1]) + 1 + margin, height),
    )


def feather(mask: np.ndarray, radius: float) -> np.ndarray:
    """Soften a mask's edges by `radius` pixels, staying 0 far outside and 1 deep inside."""
    if radius <= 0:
        return mask.astype(np.float32)
    sigma = max(radius / 2.0, 0.5)
    # Only the mask's bounding box (plus the blur's reach) can change: blur just that part, in 8 bit
    # (OpenCV's fixed-point Gaussian is several times faster than float; 1/255 steps are invisible in a blend).
    bounds = nonzero_bounds(mask, margin=int(np.ceil(3 * sigma)) + 1)
    soft = np.zeros(mask.shape, dtype=np.float32)
    if bounds is None:
        return soft
    left, top, right, bottom = bounds
    crop = cv2.convertScaleAbs(mask[top:bottom, left:right], alpha=255.0)
    blurred = cv2.GaussianBlur(crop, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
    soft[top:bottom, left:right] = blurred.astype(np.float32) * np.float32(1 / 255)
    return soft


def default_feather(size: tuple[int, int]) -> float:
    """Feather radius used by tools: about 0.6% of the shorter side, at least 1 pixel."""
    return max(1.0, 0.006 * min(size))


def blend_arrays(base: np.ndarray, top: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`top` over `base` (uint8 arrays of one shape) through a soft mask, as a new array.

    Where the mask is 0 the result is `base` bit for bit; only the mask's bounding box is computed.
    """
    if top.shape != base.shape:
        raise ValueError(f"edited image is {top.shape}, original is {base.shape}")
    out = np.array(base)
    bounds = nonzero_bounds(mask)
    if bounds is None:
        return out
    left, top_row, right, bottom = bounds
    alpha = np.ascontiguousarray(mask[top_row:bottom, left:right], dtype=np.float32)
    # cv2.blendLinear computes (a*w + b*(1-w)) per pixel in one pass, rounding to uint8.
    out[top_row:bottom, left:right] = cv2.blendLinear(
        top[top_row:bottom, left:right], base[top_row:bottom, left:right], alpha, 1.0 - alpha
    )
    return out


def blend(original: Image.Image, edited: Image.Image, mask: np.ndarray) -> Image.Image:
    """Composite `edited` over `original` through a soft mask (1 takes the edit); 0 keeps `original` exactly."""
    if edited.size != original.size:
        raise ValueError(f"edited image is {edited.size}, original is {original.size}")
    if edited.mode != original.mode:
        edited = edited.convert(original.mode)
    return Image.fromarray(blend_arrays(np.asarray(original), np.asarray(edited), mask), original.mode)


def mask_bbox(mask: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int, int]:
    """Pixel bounds (left, top, right, bottom) of where a mask is set."""
    x, y, w, h = cv2.boundingRect((mask > threshold).astype(np.uint8))
    if w == 0 or h == 0:
        raise RegionError("region is empty on this image")
    return x, y, x + w, y + h


def region_aliases(region: Any, regions: Sequence[dict[str, Any]]) -> list[Any]:
    """The names of the same pixels among a catalog's `regions`: ``background`` and the catalog's background
    entry (``r7``: `region_mask` resolves one to the other), likewise ``whole``; any other region is only itself
    (a retry on another name of a rejected region is the same call)."""
    for kind in ("background", "whole"):
        ids = [entry["id"] for entry in regions if entry["kind"] == kind]
        if region == kind or region in ids:
            return [kind, *ids]
    return [region]


def catalog_name(image_id: str) -> str:
    """The store document name of an image's region catalog."""
    return f"catalog-{image_id}"


def save_catalog(store: ImageStore, catalog: RegionCatalog) -> None:
    store.put_json(catalog_name(catalog["image_id"]), catalog)


def load_catalog(store: ImageStore, image_id: str) -> RegionCatalog | None:
    """The catalog of an image or, failing that, of the nearest ancestor that has one.

    Edits keep the layout, so the regions found on the original image stay valid for the images derived from it.
    """
    for ref in reversed(store.lineage(image_id)):
        catalog = store.get_json(catalog_name(ref["id"]))
        if catalog is not None:
            return catalog
    return None
