"""Perception: the region catalog of an image, found offline with classical vision and rapidocr.

`build_catalog` names the candidate regions an edit can target: each text line read by OCR (``r1``, ``r2``, ...
in reading order, with its string), the salient foreground object (a GrabCut mask seeded by a saliency map,
stored as a mask image), the boxes an open-vocabulary detector finds for the queries a caller gives (where a
detector is configured: `pixplan.tools.grounding`, OWLv2), and the implicit ``background`` (everything except
the objects and the text lines, grown by a margin) and ``whole``.
`describe_catalog` renders a catalog as the compact text a model reads; `read_text` is the OCR the metric judge
reuses to check what a region says.

The OCR engine (rapidocr's ONNX models, shipped in its wheel) loads lazily, once per process.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PIL import Image

from pixplan.tools.regions import (
    CatalogRegion,
    RegionCatalog,
    background_mask,
    box_to_pixels,
    pixels_to_box,
    save_catalog,
)
from pixplan.tools.store import ImageStore

if TYPE_CHECKING:
    from pixplan.tools.grounding import GroundingSettings

#: Longest image side the OCR text detector sees; larger images are scaled down for detection only.
OCR_DETECTION_SIDE = 736
#: OCR lines read with less confidence than this are dropped.
OCR_MIN_SCORE = 0.5
#: Longest image side the saliency map and GrabCut work at.
SEGMENTATION_SIDE = 320


# --------------------------------------------------------------------------------------------------------- OCR


@functools.cache
def ocr_engine() -> Any:
    """The process's rapidocr engine (loads its ONNX models on first use, ~1 s)."""
    from rapidocr_onnxruntime import RapidOCR

    # limit_type "max": the detector never upscales (by default it blows small crops up to 736 px high).
    return RapidOCR(det_limit_type="max", text_score=OCR_MIN_SCORE, print_verbose=False)


def _as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[..., :3].astype(np.uint8))


def _detect_and_read(rgb: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
    """rapidocr's detector on the image scaled to `OCR_DETECTION_SIDE`, its recogniser on full-resolution crops.

    Detection is most of OCR's cost and finds text lines as well at a lower resolution; recognition keeps the
    detail of the original pixels. Returns (4 corner points, text, score) per detected line.
    """
    engine = ocr_engine()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    height, width = bgr.shape[:2]
    if min(height, width) < 32:  # the detector needs a little room around text
        pad_y, pad_x = max(0, (32 - height + 1) // 2), max(0, (32 - width + 1) // 2)
        bgr = cv2.copyMakeBorder(bgr, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_REPLICATE)
    else:
        pad_y = pad_x = 0
    scale = min(1.0, OCR_DETECTION_SIDE / max(bgr.shape[:2]))
    small = bgr if scale == 1.0 else cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    boxes, _ = engine.text_det(small)
    if boxes is None or len(boxes) == 0:
        return []
    boxes = np.asarray(boxes, dtype=np.float32) / scale
    recognised, _ = engine.text_rec(engine.get_crop_img_list(bgr, list(boxes)))
    boxes -= np.array([pad_x, pad_y], dtype=np.float32)
    return [(box, str(result[0]), float(result[1])) for box, result in zip(boxes, recognised, strict=True)]


def ocr_lines(image: Image.Image | np.ndarray) -> list[dict[str, Any]]:
    """Text lines of an image: ``{"box": (left, top, right, bottom) in pixels, "text", "score"}``.

    Fragments that rapidocr reports separately on one line (words far apart, a price beside a slogan) are
    merged into one line when they share a baseline and are close; lines come back in reading order.
    """
    fragments = []
    for points, text, score in _detect_and_read(_as_rgb_array(image)):
        text = text.strip()
        # Single glyphs read with low confidence are round or striped shapes (a cup rim read as "O"), not text.
        if not text or score < OCR_MIN_SCORE or (len(text) < 2 and score < 0.8):
            continue
        xs, ys = points[:, 0], points[:, 1]
        box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
        fragments.append({"box": box, "text": text, "score": score})
    return _merge_fragments(fragments)


def _same_line(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when fragment `b` continues the line of fragment `a` (to its right, same height, close)."""
    _, at, ar, ab = a["box"]
    bl, bt, _, bb = b["box"]
    height_a, height_b = ab - at, bb - bt
    overlap = min(ab, bb) - max(at, bt)
    if overlap < 0.6 * min(height_a, height_b):
        return False
    if max(height_a, height_b) > 1.5 * min(height_a, height_b):
        return False
    gap = bl - ar
    return -0.5 * height_a <= gap <= 1.2 * max(height_a, height_b)


def _merge_fragments(fragments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for fragment in sorted(fragments, key=lambda item: item["box"][0]):
        for line in lines:
            if _same_line(line, fragment):
                l0, t0, r0, b0 = line["box"]
                l1, t1, r1, b1 = fragment["box"]
                line["box"] = (min(l0, l1), min(t0, t1), max(r0, r1), max(b0, b1))
                line["text"] = f"{line['text']} {fragment['text']}"
                line["score"] = min(line["score"], fragment["score"])
                break
        else:
            lines.append(dict(fragment))
    # Reading order: top to bottom by line centre, left to right within a row.
    return sorted(lines, key=lambda line: (round((line["box"][1] + line["box"][3]) / 2 / 8), line["box"][0]))


def ocr_lines_in(image: Image.Image | np.ndarray, bounds: tuple[int, int, int, int]) -> list[dict[str, Any]]:
    """`ocr_lines` of the pixel box `bounds` (left, top, right, bottom), with boxes in image coordinates.

    The crop gets a margin of its own edge colours (not the neighbouring pixels, which may hold other text),
    since the text detector misses text that touches the image's edge.
    """
    left, top, right, bottom = bounds
    crop = _as_rgb_array(image)[top:bottom, left:right]
    pad = max(8, int(0.5 * min(crop.shape[:2])))
    lines = ocr_lines(cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_REPLICATE))
    for line in lines:
        x0, y0, x1, y1 = line["box"]
        line["box"] = (
            float(np.clip(x0 - pad, 0, right - left)) + left,
            float(np.clip(y0 - pad, 0, bottom - top)) + top,
            float(np.clip(x1 - pad, 0, right - left)) + left,
            float(np.clip(y1 - pad, 0, bottom - top)) + top,
        )
    return lines


def read_line(image: Image.Image | np.ndarray, bounds: tuple[int, int, int, int]) -> str:
    """The text of one line of text in pixel box `bounds`, read by the recogniser alone (tens of ms)."""
    left, top, right, bottom = bounds
    crop = np.ascontiguousarray(_as_rgb_array(image)[top:bottom, left:right, ::-1])
    result, _ = ocr_engine()(crop, use_det=False, use_cls=False)
    texts = [str(entry[0]).strip() for entry in result or [] if float(entry[1]) >= OCR_MIN_SCORE]
    return " ".join(text for text in texts if text)


def read_text(image: Image.Image | np.ndarray, box: list[float] | tuple[float, ...] | None = None) -> str:
    """The text OCR reads in an image or in a normalized box [x0, y0, x1, y1] of it, lines joined by spaces.

    Where the text detector finds nothing, the crop is read as one line by the recogniser alone.
    """
    array = _as_rgb_array(image)
    height, width = array.shape[:2]
    bounds = box_to_pixels(box, (width, height)) if box is not None else (0, 0, width, height)
    lines = ocr_lines_in(array, bounds)
    if lines:
        return " ".join(line["text"] for line in lines)
    return read_line(array, bounds)


# --------------------------------------------------------------------------------------------------- saliency


def _spectral_residual(gray: np.ndarray) -> np.ndarray:
    """Spectral-residual saliency (Hou and Zhang, 2007) at 64 px, resized to `gray`'s shape, in 0..1."""
    small = cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    spectrum = np.fft.fft2(small)
    log_amplitude = np.log(np.abs(spectrum) + 1e-6).astype(np.float32)
    residual = log_amplitude - cv2.blur(log_amplitude, (3, 3))
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    saliency = cv2.GaussianBlur(saliency.astype(np.float32), (0, 0), 2.5)
    saliency = cv2.resize(saliency, gray.shape[::-1], interpolation=cv2.INTER_LINEAR)
    return _normalize(saliency)


def _boundary_contrast(lab: np.ndarray) -> np.ndarray:
    """Colour distance of every pixel to the colours of the image border (the background prior), in 0..1.

    The top, left and right borders count; the bottom one does not, since subjects stand on it (a person's
    torso, a product on its table, a rocket on its pad) far more often than they touch the other sides.
    """
    height, width = lab.shape[:2]
    ring = max(2, int(0.03 * min(height, width)))
    border = np.concatenate(
        [
            lab[:ring].reshape(-1, 3),
            lab[:, :ring].reshape(-1, 3),
            lab[:, -ring:].reshape(-1, 3),
        ]
    ).astype(np.float32)
    clusters = min(6, len(border))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    cv2.setRNGSeed(0)  # k-means++ seeding: the same image always gets the same catalog
    _, labels, centers = cv2.kmeans(border, clusters, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    # Ignore tiny border clusters (an object touching the edge should not count as background colour).
    counts = np.bincount(labels.ravel(), minlength=clusters)
    centers = centers[counts >= 0.05 * len(border)]
    pixels = lab.reshape(-1, 3).astype(np.float32)
    distance = np.min(np.linalg.norm(pixels[:, None, :] - centers[None, :, :], axis=-1), axis=1)
    return _normalize(distance.reshape(height, width))


def _normalize(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-9:
        return np.zeros_like(values, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def saliency_map(rgb: np.ndarray, text_boxes: list[tuple[float, float, float, float]] = ()) -> np.ndarray:
    """Foreground likelihood in 0..1 for an RGB array: border-colour contrast, spectral residual, centre prior.

    Text boxes (pixel coordinates of `rgb`) are zeroed: text is its own kind of region, not the product.
    """
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    height, width = gray.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    centre = np.exp(-(((xs / width - 0.5) ** 2) + ((ys / height - 0.5) ** 2)) / (2 * 0.35**2))
    saliency = (0.75 * _boundary_contrast(lab) + 0.25 * _spectral_residual(gray)) * (0.5 + 0.5 * centre)
    for left, top, right, bottom in text_boxes:
        saliency[int(top) : int(np.ceil(bottom)), int(left) : int(np.ceil(right))] = 0.0
    return _normalize(cv2.GaussianBlur(saliency, (0, 0), 1.0))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1).astype(np.uint8)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = flood == 0
    return (padded.astype(bool) | holes)[1:-1, 1:-1]


def _main_components(mask: np.ndarray, keep_fraction: float = 0.2) -> np.ndarray:
    """The largest connected component and any other at least `keep_fraction` of its area."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask, dtype=bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = [index + 1 for index, area in enumerate(areas) if area >= keep_fraction * areas.max()]
    return np.isin(labels, keep)


def foreground_mask(
    image: Image.Image, text_boxes: list[tuple[float, float, float, float]] = ()
) -> np.ndarray | None:
    """Boolean mask (H x W) of the salient foreground object, or None when nothing stands out.

    A saliency map seeds OpenCV's GrabCut (sure foreground where saliency is high, probable background
    elsewhere); the result is cleaned (main components, holes filled) and scaled back to the image size.
    """
    width, height = image.size
    scale = min(1.0, SEGMENTATION_SIDE / max(width, height))
    small_size = (max(8, round(width * scale)), max(8, round(height * scale)))
    small = np.asarray(image.convert("RGB").resize(small_size, Image.Resampling.BILINEAR))
    sx, sy = small_size[0] / width, small_size[1] / height
    scaled_text = [(x0 * sx, y0 * sy, x1 * sx, y1 * sy) for x0, y0, x1, y1 in text_boxes]
    saliency = saliency_map(small, scaled_text)
    otsu, _ = cv2.threshold((saliency * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = max(otsu / 255.0, 0.2)
    seed = saliency > threshold
    if seed.mean() < 0.002:
        return None
    grab = np.full(saliency.shape, cv2.GC_PR_BGD, dtype=np.uint8)
    grab[seed] = cv2.GC_PR_FGD
    core = cv2.erode(((saliency > max(0.7, threshold + 0.3)) * 1).astype(np.uint8), np.ones((3, 3), np.uint8))
    grab[core > 0] = cv2.GC_FGD
    grab[saliency < 0.5 * threshold] = cv2.GC_BGD
    background_model = np.zeros((1, 65), np.float64)
    foreground_model = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut seeds its colour models with k-means
    try:
        cv2.grabCut(
            cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
            grab,
            None,
            background_model,
            foreground_model,
            3,
            cv2.GC_INIT_WITH_MASK,
        )
        mask = (grab == cv2.GC_FGD) | (grab == cv2.GC_PR_FGD)
    except cv2.error:
        # GrabCut refuses masks whose seeds hold only one class; the saliency seed is then the answer.
        mask = seed
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    mask = _fill_holes(_main_components(mask > 0))
    if not 0.005 <= mask.mean() <= 0.9:
        mask = _fill_holes(_main_components(seed))
        if not 0.005 <= mask.mean() <= 0.9:
            return None
    full = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR) > 0.5
    return full if full.any() and not full.all() else None


# ---------------------------------------------------------------------------------------------------- catalog


def build_catalog(
    store: ImageStore,
    image_id: str,
    *,
    save: bool = True,
    detect: Sequence[str] = (),
    grounding: GroundingSettings | None = None,
    detect_min_score: float = 0.1,
    detect_max_regions: int = 3,
) -> RegionCatalog:
    """Find the named regions of a stored image, and (by default) save the catalog beside it.

    Regions: ``r1``, ``r2``, ... for the text lines in reading order (kind ``text``, with the OCR string), then
    the salient foreground (kind ``object``, label ``main object``, with a stored mask), then, for each query in
    `detect`, the boxes an open-vocabulary detector finds (kind ``object``, labelled with the query, with their
    score; at most `detect_max_regions` per query, each at least `detect_min_score`), then ``background``
    (everything except the objects and the text layer, `regions.text_mask`: the glyphs and any badge that
    carries them, not the backdrop between them; with its own stored mask; only where there is an object) and
    ``whole``. Masks are stored as grayscale images whose
    parent is the image.

    Detection runs the model of `grounding` (`pixplan.tools.grounding.GroundingSettings`; default: its
    environment defaults, ``PIXPLAN_DETECTOR_MODEL``); torch and transformers load only when `detect` is given.
    """
    if detect:  # load the detector first: a missing model fails before OCR and segmentation run
        from pixplan.tools import grounding as grounding_module

        settings = grounding or grounding_module.GroundingSettings()
        grounding_module.load_model(settings.detector_model, "detector", settings.device)
    image = store.get(image_id).convert("RGB")
    size = image.size
    catalog = RegionCatalog(image_id=image_id, width=size[0], height=size[1], regions=[])
    regions = catalog["regions"]
    lines = ocr_lines(image)
    for line in lines:
        regions.append(
            CatalogRegion(
                id=f"r{len(regions) + 1}",
                box=pixels_to_box(*line["box"], size),
                kind="text",
                label=f'text "{line["text"]}"',
                text=line["text"],
                score=round(line["score"], 3),
            )
        )
    foreground = foreground_mask(image, [line["box"] for line in lines])
    if foreground is not None:
        mask_ref = store.put(
            Image.fromarray(foreground.astype(np.uint8) * 255, "L"), parent=image_id, tool="perception"
        )
        ys, xs = np.nonzero(foreground)
        regions.append(
            CatalogRegion(
                id=f"r{len(regions) + 1}",
                box=pixels_to_box(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, size),
                kind="object",
                label="main object",
                mask=mask_ref["id"],
            )
        )
    if detect:
        for query in detect:
            found = grounding_module.find_boxes(
                image, query, settings, min_score=detect_min_score, max_regions=detect_max_regions
            )
            grounding_module.append_regions(catalog, found)
    if any(entry["kind"] == "object" for entry in regions):
        background = background_mask(catalog, size, store) > 0.5
        background_ref = store.put(
            Image.fromarray(background.astype(np.uint8) * 255, "L"), parent=image_id, tool="perception"
        )
        regions.append(
            CatalogRegion(
                id="background",
                box=[0.0, 0.0, 1.0, 1.0],
                kind="background",
                label="background",
                mask=background_ref["id"],
            )
        )
    regions.append(CatalogRegion(id="whole", box=[0.0, 0.0, 1.0, 1.0], kind="whole", label="whole image"))
    if save:
        save_catalog(store, catalog)
    return catalog


def _position(box: list[float]) -> str:
    x = (box[0] + box[2]) / 2
    y = (box[1] + box[3]) / 2
    vertical = "top" if y < 1 / 3 else "bottom" if y > 2 / 3 else "middle"
    horizontal = "left" if x < 1 / 3 else "right" if x > 2 / 3 else "centre"
    if vertical == "middle" and horizontal == "centre":
        return "centre"
    return f"{vertical} {horizontal}"


def describe_catalog(catalog: RegionCatalog) -> str:
    """The catalog as compact text for a model prompt: one line per region with id, kind, label and box.

    Text-only models see the image only through this description, so text regions carry their OCR string,
    and every box its position in words and its share of the image area. Text read from the image is data
    that anyone who made the image chose: it is quoted as a JSON string (escaped, on its own line's end), so it
    can neither pass for an instruction nor break out of its line to forge a region.
    """
    lines = [
        f"Image {catalog['width']}x{catalog['height']} px. Regions (box = [x0, y0, x1, y1] as fractions of "
        "width and height, origin top left):"
    ]
    for entry in catalog["regions"]:
        x0, y0, x1, y1 = entry["box"]
        box = f"[{x0:.2f}, {y0:.2f}, {x1:.2f}, {y1:.2f}]"
        if entry["kind"] == "whole":
            lines.append(f"- {entry['id']}: the whole image")
            continue
        if entry["kind"] == "background":
            lines.append(f"- {entry['id']}: background, everything except the foreground object(s) and text")
            continue
        area = (x1 - x0) * (y1 - y0)
        if entry["kind"] == "text" and "text" in entry:
            label = "text " + json.dumps(entry["text"], ensure_ascii=False)
        else:
            label = json.dumps(entry["label"], ensure_ascii=False)[1:-1]  # escaped: one line, whatever it holds
        lines.append(
            f"- {entry['id']} ({entry['kind']}): {label} box {box}, {_position(entry['box'])}, "
            f"{area:.0%} of the image"
        )
    return "\n".join(lines)
