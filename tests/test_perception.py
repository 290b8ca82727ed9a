"""Region catalog: OCR text lines, the salient foreground and its complement, on rendered ads and real photos."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from pixplan.tools.perception import (
    _merge_fragments,
    build_catalog,
    describe_catalog,
    foreground_mask,
    read_text,
)
from pixplan.tools.regions import load_catalog, region_mask, text_mask
from pixplan.tools.store import ImageStore


def _iou(box_a, box_b) -> float:
    left, top = max(box_a[0], box_b[0]), max(box_a[1], box_b[1])
    right, bottom = min(box_a[2], box_b[2]), min(box_a[3], box_b[3])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    area = (box_a[2] - box_a[0]) * (box_a[3] - box_a[1]) + (box_b[2] - box_b[0]) * (box_b[3] - box_b[1])
    return inter / (area - inter)


def _normalized(box, size) -> list[float]:
    return [box[0] / size[0], box[1] / size[1], box[2] / size[0], box[3] / size[1]]


@pytest.fixture(scope="module")
def ad_catalog(tmp_path_factory, make_ad):
    """One rendered ad, stored and catalogued once for the module (OCR is the slow part)."""
    store = ImageStore(tmp_path_factory.mktemp("store"))
    image, layout = make_ad(photo="coffee", headline="SUMMER SALE", caption="Only $9.99 this week")
    ref = store.put(image)
    return store, ref, image, layout, build_catalog(store, ref["id"])


def test_catalog_reads_the_headline_and_caption_as_text_regions(ad_catalog):
    _, _, image, layout, catalog = ad_catalog
    texts = [entry for entry in catalog["regions"] if entry["kind"] == "text"]
    assert [entry["text"] for entry in texts] == ["SUMMER SALE", "Only $9.99 this week"]
    assert [entry["id"] for entry in texts] == ["r1", "r2"]
    assert texts[0]["label"] == 'text "SUMMER SALE"'
    assert _iou(texts[0]["box"], _normalized(layout["headline"], image.size)) > 0.5
    assert _iou(texts[1]["box"], _normalized(layout["caption"], image.size)) > 0.5


def test_catalog_finds_the_pasted_photo_as_the_foreground(ad_catalog):
    store, _, image, layout, catalog = ad_catalog
    objects = [entry for entry in catalog["regions"] if entry["kind"] == "object"]
    assert len(objects) == 1 and objects[0]["label"] == "main object"
    assert _iou(objects[0]["box"], _normalized(layout["photo"], image.size)) > 0.7
    mask = region_mask(objects[0]["id"], image.size, catalog=catalog, store=store)
    left, top, right, bottom = layout["photo"]
    assert mask[top:bottom, left:right].mean() > 0.7
    assert mask[layout["band"][1] :, :].max() == 0  # neither the band nor its text is the product


def test_background_is_everything_but_the_foreground_and_the_text(ad_catalog):
    store, _, image, layout, catalog = ad_catalog
    ids = [entry["id"] for entry in catalog["regions"]]
    assert ids[-2:] == ["background", "whole"]
    background = region_mask("background", image.size, catalog=catalog, store=store)
    foreground = region_mask("r3", image.size, catalog=catalog, store=store)
    text = text_mask(catalog["regions"], image.size, np.asarray(image))
    np.testing.assert_array_equal(background, 1.0 - np.maximum(foreground, text))
    pixels = np.asarray(image).astype(int)
    # The glyphs are not background; the band or backdrop between and inside them is.
    for name in ("headline", "caption"):
        left, top, right, bottom = layout[name]
        ink = (slice(top - 2, bottom + 2), slice(left - 2, right + 2))
        difference = np.abs(pixels[ink] - pixels[top - 4, left - 4]).max(axis=-1)
        assert background[ink][difference > 30].max() == 0
        plain = cv2.erode((difference < 8).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        assert plain.sum() > 500 and background[ink][plain].min() == 1
    assert (
        background[layout["band"][1] + 5 : layout["band"][3] - 5, :100].min() == 1
    )  # the band beside them is
    left, top, right, bottom = layout["photo"]
    cx, cy = (left + right) // 2, (top + bottom) // 2
    assert background[cy - 20 : cy + 20, cx - 20 : cx + 20].max() == 0
    assert background[:50, :50].min() == 1 and background[-50:, -50:].min() == 1


def test_catalog_is_saved_and_serves_derived_images(ad_catalog):
    store, ref, image, _, catalog = ad_catalog
    assert load_catalog(store, ref["id"]) == catalog
    child = store.put(image.rotate(0, translate=(1, 0)), parent=ref["id"], tool="test")
    assert load_catalog(store, child["id"]) == catalog


def test_describe_catalog_lists_every_region_for_a_text_only_model(ad_catalog):
    _, _, _, _, catalog = ad_catalog
    text = describe_catalog(catalog)
    assert text.startswith("Image 1000x1000 px.")
    assert '- r1 (text): text "SUMMER SALE" box [0.' in text
    assert '- r2 (text): text "Only $9.99 this week"' in text
    assert "- r3 (object): main object box [0.2" in text and "top centre" in text
    assert "- background:" in text and "- whole: the whole image" in text
    assert len(text.splitlines()) == 1 + len(catalog["regions"])


def test_read_text_reads_only_inside_the_box(ad_catalog):
    _, _, image, layout, _ = ad_catalog
    assert read_text(image, _normalized(layout["headline"], image.size)) == "SUMMER SALE"


def test_real_photo_has_an_object_and_no_phantom_text(store):
    # The coffee cup's round rim reads as a low-confidence "O"; it must not become a text region.
    ref = store.put(Image.fromarray(skimage.data.coffee()))
    catalog = build_catalog(store, ref["id"])
    kinds = [entry["kind"] for entry in catalog["regions"]]
    assert kinds == ["object", "background", "whole"]
    cup = region_mask("r1", (600, 400), catalog=catalog, store=store)
    assert cup[100:200, 250:350].mean() > 0.9  # the cup
    assert cup[:, :60].max() == 0  # the table at the left edge


def test_fragments_on_one_line_merge_and_lines_come_in_reading_order():
    fragments = [
        {"box": (400, 100, 520, 140), "text": "50%", "score": 0.9},
        {"box": (100, 100, 360, 140), "text": "SAVE", "score": 0.95},
        {"box": (100, 10, 300, 40), "text": "Headline", "score": 0.99},
        {"box": (900, 100, 990, 140), "text": "far", "score": 0.9},  # too far right: its own line
        {"box": (100, 180, 300, 260), "text": "tall", "score": 0.9},  # another line below
    ]
    lines = _merge_fragments(fragments)
    assert [line["text"] for line in lines] == ["Headline", "SAVE 50%", "far", "tall"]
    assert lines[1]["box"] == (100, 100, 520, 140) and lines[1]["score"] == 0.9


@pytest.mark.parametrize("size", [(1, 1), (640, 480)])
def test_a_blank_image_has_only_the_whole_region(store, size):
    ref = store.put(Image.new("RGB", size, (255, 255, 255)))
    catalog = build_catalog(store, ref["id"])
    assert catalog["regions"] == [
        {"id": "whole", "box": [0.0, 0.0, 1.0, 1.0], "kind": "whole", "label": "whole image"}
    ]
    assert describe_catalog(catalog).endswith("- whole: the whole image")


def test_foreground_is_deterministic():
    # k-means and GrabCut draw from OpenCV's global RNG: the same image must still get the same mask.
    photo = Image.fromarray(skimage.data.chelsea())
    first = foreground_mask(photo)
    cv2.setRNGSeed(12345)
    cv2.randu(np.zeros((4, 4), np.float32), 0, 1)
    np.testing.assert_array_equal(foreground_mask(photo), first)


def test_build_catalog_without_a_detector_loads_no_torch(tmp_path):
    code = (
        "import sys\n"
        "from PIL import Image\n"
        "from pixplan.tools.perception import build_catalog\n"
        "from pixplan.tools.store import ImageStore\n"
        f"store = ImageStore({str(tmp_path)!r})\n"
        "ref = store.put(Image.new('RGB', (64, 48), 'white'))\n"
        "assert build_catalog(store, ref['id'])['regions'][-1]['id'] == 'whole'\n"
        "heavy = [name for name in ('torch', 'transformers') if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
