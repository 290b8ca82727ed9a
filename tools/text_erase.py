"""Erasing the words of a text line: separate the glyphs from what lies behind them, then inpaint them.

`replace_text` (`pixplan.tools.text`) erases with `erase_text` before it draws the new words. The split is
its own module because it is the delicate part: glyphs on a flat colour, a gradient, a band's edge or a
photograph, with anti-aliased edges, an outline, or a band of an old background left around them where a
background replacement kept the text out (which, left behind, would draw the old words' outlines).
"""

from __future__ import annotations

import cv2
import numpy as np

from pixplan.tools.regions import MIN_TEXT_CONTRAST, colour_distance, edge_colours, nonzero_bounds

#: A pixel is text when it lies at least this far (0..1) from its background colour towards the text colour.
GLYPH_ALPHA = 0.2


def _split_text_pixels(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int], float]:
    """Separate the glyphs of a text box from what lies behind them.

    The background's colours are those of the box's edge (`regions.edge_colours`: k-means in Lab, up to three
    clusters, each at least 5% of the edge, so a box that straddles a band and its backdrop knows both), as for
    the text layer that 'background' keeps out (`regions.text_pixels`). Every pixel's distance to the
    nearest of them says how unlike the background it is; Otsu's split of those distances finds the glyphs'
    cores. These may hold two colours (the glyphs, and a band of another colour around them): the text colour
    is that of the cluster lying deeper inside the cores (`_glyph_cluster`).

    The glyphs may sit on a layer of their own colour that the box's edge does not show (`_carrier`): the old
    background left around the words where a background replacement kept the text out, or an outline. Such a
    layer is one more background colour to split the glyphs from and, when it is a thin band around the
    glyphs (a halo, not a badge or pill that carries them), it is returned to be erased too: left behind, it
    would draw the old words' outlines.

    A pixel belongs to the text when it lies at least `GLYPH_ALPHA` of the way from its background colour
    towards the text colour, near the line between the two: that takes the anti-aliased edges too, which would
    otherwise stay behind as a faint outline.

    Returns the text mask, the halo mask (empty when there is none), the text colour and the glyphs' stroke
    width in pixels.
    """
    height, width = rgb.shape[:2]
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    ring = np.ones((height, width), dtype=bool)
    ring[2:-2, 2:-2] = False
    centres = edge_colours(lab[ring])
    pixels = lab.reshape(-1, 3)
    distance, _ = colour_distance(lab, centres)
    top = float(distance.max())
    nothing = np.zeros((height, width), dtype=bool)
    if top < MIN_TEXT_CONTRAST:  # nothing stands out from the background
        color = np.median(rgb.reshape(-1, 3), axis=0)
        return nothing, nothing, (int(color[0]), int(color[1]), int(color[2])), 0.0
    scaled = cv2.convertScaleAbs(distance, alpha=255.0 / top)
    otsu, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    cores = distance > max(otsu / 255.0 * top, MIN_TEXT_CONTRAST)
    glyphs = _glyph_cluster(lab, cores)
    # The text colour: the purer half of the glyph pixels (those farther from the background), not their soft
    # edges, which are part background.
    ink = glyphs & (distance >= np.median(distance[glyphs]))
    text_lab, color = np.median(lab[ink], axis=0), np.median(rgb[ink], axis=0)
    carrier, halo = _carrier(lab, distance > MIN_TEXT_CONTRAST, glyphs, text_lab)
    if len(carrier):
        centres = np.vstack([centres, carrier])
    _, which = colour_distance(lab, centres)
    nearest = centres[which.ravel()]
    # Where each pixel lies on the way from its background colour to the text colour (0 there, 1 at the text).
    towards = text_lab[None, :] - nearest
    length = np.maximum((towards**2).sum(axis=1), 1e-6)
    offset = pixels - nearest
    alpha = (offset * towards).sum(axis=1) / length
    off_line = np.linalg.norm(offset - alpha[:, None] * towards, axis=1)
    text = ((alpha > GLYPH_ALPHA) & (off_line < 0.5 * np.sqrt(length))).reshape(height, width) | glyphs
    # Stroke width: area over half the outline, for strokes much longer than wide.
    eroded = cv2.erode(glyphs.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    outline = glyphs & ~eroded
    stroke = 2.0 * float(glyphs.sum()) / max(float(outline.sum()), 1.0)
    return text, halo & ~text, (int(color[0]), int(color[1]), int(color[2])), stroke


def _glyph_cluster(lab: np.ndarray, cores: np.ndarray) -> np.ndarray:
    """The glyph pixels among `cores`.

    The cores may be the glyphs and a band of another colour around them (an outline, an old background left
    around the letters): of two colour clusters, the glyphs are the one lying deeper inside the cores (the
    larger mean distance to their edge). One colour splits into two near-identical clusters, which is harmless.
    """
    values = lab[cores]
    if len(values) < 16:
        return cores
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 12, 0.5)
    _, labels, _ = cv2.kmeans(np.ascontiguousarray(values), 2, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    labels = labels.ravel()
    depth = cv2.distanceTransform(cores.astype(np.uint8), cv2.DIST_L2, 3)[cores]
    means = [float(depth[labels == index].mean()) if (labels == index).any() else -1.0 for index in (0, 1)]
    glyphs = np.zeros_like(cores)
    glyphs[cores] = labels == int(np.argmax(means))
    return glyphs if glyphs.sum() >= 8 else cores


def _carrier(
    lab: np.ndarray, foreign: np.ndarray, glyphs: np.ndarray, text_lab: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A colour layer that the glyphs sit on but the box's edge does not show, and its halo to erase.

    It exists when most pixels two pixels out from the glyphs are `foreign` (unlike the box's edge colours)
    and unlike the text: their colours (`regions.edge_colours`) are the layer's. Going out from the glyphs pixel
    by pixel, the layer is a halo when the foreign share falls below a half within max(4, h / 3) pixels (h: the
    glyphs' height): the band up to there is returned to be erased with the glyphs, with two pixels more. A layer that reaches further is a badge or pill that carries the text: it
    stays (an empty halo).
    Returns (k x 3 Lab colours, possibly none; the halo mask).
    """
    none = np.zeros((0, 3), np.float32)
    empty = np.zeros_like(glyphs)
    if not glyphs.any():
        return none, empty
    out = cv2.distanceTransform((~glyphs).astype(np.uint8), cv2.DIST_L2, 3)
    near = (out > 1.0) & (out <= 2.0)
    if near.sum() < 8 or foreign[near].mean() < 0.6:
        return none, empty
    far_from_text = np.linalg.norm(lab - text_lab, axis=-1) > MIN_TEXT_CONTRAST
    colours = (
        edge_colours(lab[near & foreign & far_from_text])
        if (near & foreign & far_from_text).sum() >= 8
        else none
    )
    if not len(colours):
        return none, empty
    rows = np.flatnonzero(glyphs.any(axis=1))
    reach = max(4, round((rows[-1] - rows[0] + 1) / 3))
    for radius in range(3, reach + 1):
        band = (out > radius - 1) & (out <= radius)
        if band.any() and foreign[band].mean() < 0.5:
            # Two pixels more, so that inpainting starts from the backdrop, not from the halo's soft edge.
            return colours, out <= radius + 2
    return colours, empty


def _enclosed(mask: np.ndarray) -> np.ndarray:
    """The pixels outside `mask` that it encloses (not connected to the crop's border): letters' counters, and
    the glyphs themselves where a band of another colour rings them (dark words in a light halo on a now dark
    background, whose glyphs look like the backdrop). Erasing them with the rest leaves no dark letters behind."""
    count, labels = cv2.connectedComponents((~mask).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    inside = np.ones(count, dtype=bool)
    inside[border] = False
    inside[0] = False  # label 0 is the mask itself
    return inside[labels]


def erase_text(
    array: np.ndarray, box: tuple[int, int, int, int], pad: int
) -> tuple[tuple[int, int, int], tuple[int, int, int, int]]:
    """Erase the text inside pixel `box` of `array` (RGB, modified in place) by inpainting its glyphs.

    OCR boxes can clip the outermost strokes, so the glyphs are looked for in the box grown by `pad` pixels;
    nothing outside that grown box changes. The hole is the glyph mask grown by a third of the stroke width
    (at least 2 pixels), so that inpainting starts from clean background, not from the letters' soft edges,
    with any halo around the glyphs (`_split_text_pixels`) and what the hole encloses (`_enclosed`).
    Returns the text's colour and the ink bounds (left, top, right, bottom) of the erased glyphs.
    """
    height, width = array.shape[:2]
    left, top = max(0, box[0] - pad), max(0, box[1] - pad)
    right, bottom = min(width, box[2] + pad), min(height, box[3] + pad)
    text, halo, color, stroke = _split_text_pixels(array[top:bottom, left:right])
    grow = max(2, round(stroke / 3))
    hole = cv2.dilate(
        text.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2)
    )
    hole[halo] = 1
    hole[_enclosed(hole > 0)] = 1
    # Inpaint a crop with some context around the grown box, then keep only the hole's pixels.
    context = 8
    x0, y0 = max(0, left - context), max(0, top - context)
    x1, y1 = min(width, right + context), min(height, bottom + context)
    hole_crop = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    hole_crop[top - y0 : bottom - y0, left - x0 : right - x0] = hole
    filled = cv2.inpaint(np.ascontiguousarray(array[y0:y1, x0:x1]), hole_crop, 3, cv2.INPAINT_TELEA)
    array[y0:y1, x0:x1] = np.where(hole_crop[..., None] > 0, filled, array[y0:y1, x0:x1])
    ink = nonzero_bounds(text)
    ink_box = (left + ink[0], top + ink[1], left + ink[2], top + ink[3]) if ink else box
    return color, ink_box
