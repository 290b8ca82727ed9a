"""The metric judge: typed checklist checks evaluated on pixels, deterministic and offline.

It implements the `Judge` protocol of `schemas.py`, so the graph can use it wherever an LLM judge would go, and
the benchmark uses it to score every system the same way. What it measures:

- each checklist item that carries a typed check (`checks.py`) is evaluated on the pixels of its region:
  OCR text (`text_contains`, `text_absent`), colour statistics (`color_in_range`), change against the original
  (`changed`, `new_element`) and preservation (`preserved`);
- items without a typed check are **not verifiable** on pixels: they get no per-item verdict and do not count
  (the verdict's reasons say so), never an invented pass or fail;
- for a step judgement whose region is known, `instruction_adherence` is a proxy: how much of the region changed
  (10 once at least `ADHERENCE_FULL_FRACTION` of it did) or how large a new compact element in it is (10 once it
  covers `ELEMENT_FULL_FRACTION` of the image: an icon added to the whole background changes 2% of it, yet it is
  the whole edit asked for), and `preservation` is how little changed outside it (10 for no change, 0 at a mean
  absolute difference of `PRESERVATION_ZERO_DIFF` or more);
- for a final judgement, `instruction_adherence` is 10 x the pass rate of the change checks and `preservation`
  10 x the pass rate of the `preserved` checks (None where there are none);
- `plausibility` is always None: no pixel statistic tells whether an edit looks natural; the LLM judge scores it.

Colour statistics, on the region's pixels (RGB in 0..1):

- hue: circular mean of HSV hue in degrees, weighted by chroma (max - min), so grey pixels do not vote; a region
  with almost no chroma has no hue, and a hue check on it fails;
- saturation: mean of chroma / max(value, 0.5) (chroma = max - min, value = max): HSV saturation for colours
  at least half as bright as white, while darker colours count their chroma against half brightness, so that
  near-black is not "saturated" (#1a1a2e: 0.16, where HSV says 0.43; pure black and greys: 0);
- brightness: mean Rec. 601 luma; warmth: mean (R - B).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

from pixplan.graph.checks import (
    CHANGE_CHECKS,
    Changed,
    Check,
    ChecklistItem,
    ColorInRange,
    NewElement,
    Preserved,
    TextAbsent,
    TextContains,
)
from pixplan.graph.schemas import ItemVerdict, JudgeFailure, JudgeRequest, Verdict
from pixplan.tools.regions import RegionCatalog, RegionError, load_catalog, mask_bbox, region_mask

if TYPE_CHECKING:
    from pixplan.tools.store import ImageStore

#: A pixel "changed" when some channel moved by more than this (0..1, about 20 of 255).
PIXEL_CHANGE_THRESHOLD = 0.08
#: Below this total chroma weight per pixel, a region is grey and has no hue.
MIN_MEAN_CHROMA = 0.04
#: Saturation is chroma over the pixel's value, the value floored here: dark colours are not saturated.
SATURATION_VALUE_FLOOR = 0.5
#: Step adherence reaches 10 once this fraction of the step's region changed.
ADHERENCE_FULL_FRACTION = 0.15
#: Step adherence also reaches 10 once a new compact element in the step's region covers this fraction of the
#: image (an added icon or badge: measured as `new_element` measures, whatever the region's size).
ELEMENT_FULL_FRACTION = 0.01
#: Step preservation falls to 0 at this mean absolute difference outside the region.
PRESERVATION_ZERO_DIFF = 0.05
#: Without a known region, a step "did something" when this fraction of the image changed.
ANY_CHANGE_FRACTION = 0.005


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def region_stats(image: Image.Image, mask: np.ndarray) -> dict[str, float | None]:
    """Hue (degrees, None when grey), saturation, brightness and warmth of the pixels where `mask` > 0.5."""
    pixels = _array(image)[mask > 0.5]
    if len(pixels) == 0:
        raise RegionError("region is empty on this image")
    hsv = cv2.cvtColor(pixels[None, :, :], cv2.COLOR_RGB2HSV)[0]  # H in degrees 0..360, S and V in 0..1
    value = pixels.max(axis=1)
    chroma = value - pixels.min(axis=1)
    hue: float | None = None
    if chroma.mean() >= MIN_MEAN_CHROMA:
        angle = np.deg2rad(hsv[:, 0])
        x, y = float((chroma * np.cos(angle)).sum()), float((chroma * np.sin(angle)).sum())
        hue = float(np.rad2deg(np.arctan2(y, x)) % 360.0)
    luma = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return {
        "hue": hue,
        "saturation": float((chroma / np.maximum(value, SATURATION_VALUE_FLOOR)).mean()),
        "brightness": float(luma.mean()),
        "warmth": float((pixels[:, 0] - pixels[:, 2]).mean()),
    }


def in_range(stat: str, value: float, low: float, high: float) -> bool:
    """Whether `value` lies in [low, high]; for hue, `low > high` means the range wraps through 0."""
    if stat == "hue" and low > high:
        return value >= low or value <= high
    return low <= value <= high


def changed_pixels(original: Image.Image, edited: Image.Image) -> np.ndarray:
    """Boolean H x W map of the pixels where some channel moved by more than `PIXEL_CHANGE_THRESHOLD`."""
    if original.size != edited.size:
        raise ValueError(f"edited image is {edited.size}, original is {original.size}")
    return np.abs(_array(edited) - _array(original)).max(axis=-1) > PIXEL_CHANGE_THRESHOLD


def mean_abs_diff(original: Image.Image, edited: Image.Image, mask: np.ndarray) -> float:
    """Mean absolute difference (0..1, over channels) of the pixels where `mask` > 0.5."""
    inside = mask > 0.5
    if not inside.any():
        return 0.0
    return float(np.abs(_array(edited) - _array(original))[inside].mean())


def _ink_bounds(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounds (left, top, right, bottom) of the pixels that stand out from the crop's edge colour."""
    ring = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.float32)
    ink = np.abs(rgb.astype(np.float32) - np.median(ring, axis=0)).max(axis=-1) > 50
    rows, columns = np.nonzero(ink.sum(axis=1) >= 2)[0], np.nonzero(ink.sum(axis=0) >= 1)[0]
    if len(rows) == 0 or len(columns) == 0:
        return None
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


def read_region_text(image: Image.Image, mask: np.ndarray) -> str:
    """OCR of the region's bounding box (rapidocr through `pixplan.tools.perception`, offline).

    The crop is tightened to its ink (the pixels that stand out from its edge colour), so small text fills the
    recogniser's input. A line-shaped crop (at least 2.5 times as wide as high) is read by the recogniser alone
    (about 40 ms); anything else (a badge, wrapped lines) goes through `read_text`, which detects lines first.
    """
    from pixplan.tools.perception import ocr_engine, read_text

    left, top, right, bottom = mask_bbox(mask)
    rgb = np.asarray(image.convert("RGB"))[top:bottom, left:right]
    bounds = _ink_bounds(rgb) if min(rgb.shape[:2]) >= 3 else None
    if bounds is None:
        return ""
    x0, y0, x1, y1 = bounds
    pad = max(3, (y1 - y0) // 4)
    rgb = rgb[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad]
    height, width = rgb.shape[:2]
    if width < 2.5 * height:
        return read_text(Image.fromarray(rgb))
    crop = Image.fromarray(rgb)
    if height < 32:
        crop = crop.resize((max(1, round(width * 32 / height)), 32), Image.Resampling.BICUBIC)
    bgr = np.ascontiguousarray(np.asarray(crop)[:, :, ::-1])
    result, _ = ocr_engine()(bgr, use_det=False, use_cls=False)
    return " ".join(str(entry[0]).strip() for entry in result or [] if str(entry[0]).strip())


def _normalise(text: str) -> str:
    return re.sub(r"[^0-9a-z%$€£]+", "", text.lower())


def _edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, char_b in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (char_a != char_b))
    return row[-1]


def _contains(flat: str, word: str) -> bool:
    """Substring test that forgives one OCR slip (a dropped, added or wrong letter) in words of 5+ letters."""
    if word in flat:
        return True
    if len(word) < 5:
        return False
    for length in (len(word) - 1, len(word), len(word) + 1):
        for start in range(len(flat) - length + 1):
            if _edit_distance(word, flat[start : start + length]) <= 1:
                return True
    return False


def _matches(text: str, words: list[str]) -> list[str]:
    flat = _normalise(text)
    return [word for word in words if _normalise(word) and _contains(flat, _normalise(word))]


def new_element_pixels(original: Image.Image, edited: Image.Image, mask: np.ndarray) -> tuple[int, int, int]:
    """The new pixels in the region that stand out from its surroundings, in compact shapes: (pixels, shapes,
    the region's area in pixels).

    The region's own edge colour (the median of a thin ring along its bounding box) is its backdrop; a blob is
    a connected set of pixels that differ from that backdrop by more than 0.15 and changed against the original.
    A blob that touches two or more sides of the region's box is not part of an element (a repainted
    background, stripes or a global recolour run to its edges; a new backdrop alone, being the backdrop, stands
    out from nothing). The union of the other blobs counts, so that an element drawn in separate parts (a
    recycle sign of three arrows, a word of separate letters) counts whole.
    """
    left, top, right, bottom = mask_bbox(mask)
    after = _array(edited)[top:bottom, left:right]
    before = _array(original)[top:bottom, left:right]
    inside = mask[top:bottom, left:right] > 0.5
    ring = np.concatenate(
        [
            after[:2].reshape(-1, 3),
            after[-2:].reshape(-1, 3),
            after[:, :2].reshape(-1, 3),
            after[:, -2:].reshape(-1, 3),
        ]
    )
    backdrop = np.median(ring, axis=0)
    stands_out = np.abs(after - backdrop).max(axis=-1) > 0.15
    changed = np.abs(after - before).max(axis=-1) > PIXEL_CHANGE_THRESHOLD
    blobs = cv2.morphologyEx(
        (stands_out & changed & inside).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)
    )
    count, _, stats, _ = cv2.connectedComponentsWithStats(blobs, connectivity=8)
    height, width = inside.shape
    pixels, parts = 0, 0
    for index in range(1, count):
        x, y, w, h, size = (int(value) for value in stats[index])
        touches = (x <= 1) + (y <= 1) + (x + w >= width - 1) + (y + h >= height - 1)
        if touches <= 1:
            pixels, parts = pixels + size, parts + 1
    return pixels, parts, int(inside.sum())


def _new_element(
    original: Image.Image, edited: Image.Image, mask: np.ndarray, check: NewElement
) -> tuple[bool, str]:
    """A new element passes when its pixels (`new_element_pixels`) cover `min_fraction`..`max_fraction` of the
    region."""
    pixels, parts, area = new_element_pixels(original, edited, mask)
    fraction = pixels / max(1, area)
    shapes = f"{parts} shape{'s' if parts != 1 else ''}"
    if fraction > check.max_fraction:
        return (
            False,
            f"new pixels cover {fraction:.0%} of the region ({shapes}; at most {check.max_fraction:.0%})",
        )
    if fraction >= check.min_fraction:
        return True, f"a new element covers {fraction:.0%} of the region ({shapes})"
    return (
        False,
        f"no new compact element in the region (new pixels: {fraction:.1%}, needs {check.min_fraction:.0%})",
    )


def evaluate_check(
    check: Check,
    original: Image.Image,
    edited: Image.Image,
    catalog: RegionCatalog | None = None,
    store: ImageStore | None = None,
) -> tuple[bool, str]:
    """Evaluate one typed check on the edited image (against the original where it compares).

    Regions (catalog ids, boxes, 'background', masks) resolve against `catalog` and `store`. Returns
    (passed, reason); a region that cannot be resolved fails the check, with the reason.
    """
    try:
        mask = region_mask(check.region, edited.size, catalog=catalog, store=store)
    except RegionError as error:
        return False, f"region {check.region!r} cannot be resolved: {error}"
    where = (
        check.region
        if isinstance(check.region, str)
        else "[" + ", ".join(f"{v:.2f}" for v in check.region) + "]"
    )
    if isinstance(check, TextContains | TextAbsent):
        text = read_region_text(edited, mask)
        words = check.any_of if isinstance(check, TextContains) else check.none_of
        found = _matches(text, words)
        if isinstance(check, TextContains):
            if found:
                return True, f"{where} reads {text!r}, which contains {found[0]!r}"
            return False, f"{where} reads {text!r}, which contains none of {words}"
        if found:
            return False, f"{where} still reads {text!r}, which contains {found[0]!r}"
        return True, f"{where} reads {text!r}, none of {words}"
    if isinstance(check, ColorInRange):
        value = region_stats(edited, mask)[check.stat]
        if value is None:
            return False, f"{where} is grey: it has no hue (wanted {check.min:g}..{check.max:g} degrees)"
        passed = in_range(check.stat, value, check.min, check.max)
        relation = "in" if passed else "outside"
        return passed, f"{where} {check.stat} is {value:.2f}, {relation} {check.min:g}..{check.max:g}"
    if isinstance(check, Changed):
        inside = mask > 0.5
        fraction = float(changed_pixels(original, edited)[inside].mean())
        passed = fraction >= check.min_fraction
        return passed, f"{fraction:.0%} of {where} changed (needs {check.min_fraction:.0%})"
    if isinstance(check, Preserved):
        diff = mean_abs_diff(original, edited, mask)
        passed = diff <= check.max_mean_diff
        verb = "preserved" if passed else "altered"
        return passed, f"{where} {verb}: mean difference {diff:.3f} (allowed {check.max_mean_diff:.3f})"
    if isinstance(check, NewElement):
        passed, reason = _new_element(original, edited, mask, check)
        return passed, reason.replace("the region", where)
    raise TypeError(f"unknown check type {type(check).__name__}")


def evaluate_checklist(
    checklist: list[ChecklistItem],
    original: Image.Image,
    edited: Image.Image,
    catalog: RegionCatalog | None = None,
    store: ImageStore | None = None,
) -> tuple[list[ItemVerdict], list[str]]:
    """Per-item verdicts of the typed items, and the ids of the items that cannot be verified on pixels."""
    verdicts: list[ItemVerdict] = []
    unverifiable: list[str] = []
    for item in checklist:
        if item.check is None:
            unverifiable.append(item.id)
            continue
        passed, reason = evaluate_check(item.check, original, edited, catalog, store)
        verdicts.append(ItemVerdict(id=item.id, reason=reason, passed=passed))
    return verdicts, unverifiable


class MetricJudge:
    """Judges edits with deterministic pixel measurements; no model, no network.

    Example:
        >>> verdict = MetricJudge().judge(request)  # a Verdict; never a JudgeFailure for valid images
    """

    name = "metric"

    def judge(self, request: JudgeRequest) -> Verdict | JudgeFailure:
        store = request.store
        try:
            original = store.get(request.original["id"])
            before = store.get(request.before["id"])
            after = store.get(request.after["id"])
        except KeyError as error:
            return JudgeFailure(kind="error", message=f"image not in the store: {error}")
        if after.size != original.size:
            return JudgeFailure(
                kind="error", message=f"edited image is {after.size}, original {original.size}"
            )
        catalog = load_catalog(store, request.original["id"])
        items, unverifiable = evaluate_checklist(request.checklist, original, after, catalog, store)
        reasons = [f"{item.id}: {'passed' if item.passed else 'failed'}: {item.reason}" for item in items]
        if unverifiable:
            reasons.append(
                f"not verifiable on pixels (no typed check; not counted): {', '.join(unverifiable)}"
            )
        adherence: float | None = None
        preservation: float | None = None
        region_known = request.scope == "step" and request.region is not None
        if region_known:
            try:
                mask = region_mask(request.region, after.size, catalog=catalog, store=store)
            except RegionError as error:
                reasons.append(f"the step's region {request.region!r} cannot be resolved: {error}")
                mask = None
            if mask is not None:
                inside = mask > 0.5
                fraction = float(changed_pixels(before, after)[inside].mean())
                element = new_element_pixels(before, after, mask)[0] / (after.width * after.height)
                adherence = round(
                    10 * min(1.0, max(fraction / ADHERENCE_FULL_FRACTION, element / ELEMENT_FULL_FRACTION)), 2
                )
                reasons.append(
                    f"{fraction:.0%} of the step's region changed, a new element in it covers {element:.1%} of "
                    "the image (adherence proxy)"
                )
                # Leave a margin around the region for the tools' feathered edges.
                margin = cv2.dilate(inside.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
                outside = ~margin
                if outside.any():
                    diff = mean_abs_diff(before, after, outside.astype(np.float32))
                    preservation = round(10 * max(0.0, 1 - diff / PRESERVATION_ZERO_DIFF), 2)
                    reasons.append(f"outside the region: mean difference {diff:.3f}")
        if not region_known:
            change_items = [
                v for v, c in zip(items, _typed(request.checklist), strict=True) if c in CHANGE_CHECKS
            ]
            keep_items = [
                v for v, c in zip(items, _typed(request.checklist), strict=True) if c == "preserved"
            ]
            if change_items:
                adherence = round(10 * sum(v.passed for v in change_items) / len(change_items), 2)
            elif request.scope == "step" or not items:
                fraction = float(changed_pixels(before, after).mean())
                adherence = 10.0 if fraction >= ANY_CHANGE_FRACTION else 0.0
                reasons.append(f"{fraction:.1%} of the image changed (no typed change check to measure)")
            if keep_items:
                preservation = round(10 * sum(v.passed for v in keep_items) / len(keep_items), 2)
        failed = [item for item in items if not item.passed]
        fix = "; ".join(f"{item.id}: {item.reason}" for item in failed)
        return Verdict(
            reasons=reasons,
            instruction_adherence=adherence,
            plausibility=None,
            preservation=preservation,
            checklist=items,
            fix_instructions=fix,
        )


def _typed(checklist: list[ChecklistItem]) -> list[str]:
    return [item.check.type for item in checklist if item.check is not None]
