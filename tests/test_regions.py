"""Regions: every form a tool's `region` argument takes, and a clear error for every invalid one."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from pixplan.tools.regions import (
    RegionCatalog,
    RegionError,
    blend,
    feather,
    load_catalog,
    mask_bbox,
    parse_region,
    pixels_to_box,
    region_mask,
    save_catalog,
    text_mask,
)

SIZE = (200, 100)  # width, height


def catalog_for(image_id: str, *, mask_id: str | None = None) -> RegionCatalog:
    product = {"id": "r2", "box": [0.25, 0.2, 0.75, 0.8], "kind": "object", "label": "product"}
    if mask_id is not None:
        product["mask"] = mask_id
    return {
        "image_id": image_id,
        "width": SIZE[0],
        "height": SIZE[1],
        "regions": [
            {
                "id": "r1",
                "box": [0.1, 0.05, 0.5, 0.15],
                "kind": "text",
                "label": 'text "SALE"',
                "text": "SALE",
            },
            product,
        ],
    }


def test_whole():
    mask = region_mask("whole", SIZE)
    assert mask.shape == (100, 200) and mask.dtype == np.float32 and mask.min() == 1.0


def test_normalized_box_as_list_and_as_json_text():
    mask = region_mask([0.5, 0.0, 1.0, 0.5], SIZE)
    assert mask_bbox(mask) == (100, 0, 200, 50) and mask.sum() == 100 * 50
    assert np.array_equal(region_mask("[0.5, 0.0, 1.0, 0.5]", SIZE), mask)
    assert parse_region((0.5, 0, 1, 0.5)).to_arg() == [0.5, 0.0, 1.0, 0.5]


def test_tiny_box_is_never_empty():
    assert region_mask([0.5, 0.5, 0.501, 0.501], SIZE).sum() >= 1


def test_catalog_id_and_background():
    catalog = catalog_for("img")
    text = region_mask("r1", SIZE, catalog=catalog)
    assert mask_bbox(text) == (20, 5, 100, 15)
    product = region_mask("R2", SIZE, catalog=catalog)  # ids are case-insensitive
    background = region_mask("background", SIZE, catalog=catalog)
    # The background is neither the product nor the text: r1's box (20, 5, 100, 15), grown by a third of its
    # height plus a feathered edge's reach (3 + 2 px on this image), is kept out too.
    kept = np.zeros_like(product)
    kept[0:20, 15:105] = 1.0
    assert np.array_equal(background, 1.0 - np.maximum(product, kept))
    assert background[50, 100] == 0 and background[10, 60] == 0 and background[10, 104] == 0
    assert background[0, 0] == 1 and background[10, 105] == 1 and background[20, 30] == 1


def test_mask_reference_and_catalog_mask(store):
    disc = Image.new("L", (40, 20), 0)  # a smaller mask is resized to the image
    disc.paste(255, (10, 5, 30, 15))
    mask_id = store.put(disc)["id"]
    mask = region_mask(f"mask:{mask_id}", SIZE, store=store)
    assert mask_bbox(mask) == (50, 25, 150, 75)
    catalog = catalog_for("img", mask_id=mask_id)
    assert np.array_equal(region_mask("r2", SIZE, catalog=catalog, store=store), mask)
    background = region_mask("background", SIZE, catalog=catalog, store=store)
    assert np.array_equal(background, 1.0 - np.maximum(mask, text_mask(catalog["regions"], SIZE)))


def test_catalog_is_inherited_by_derived_images(store):
    original = store.put(Image.new("RGB", SIZE))["id"]
    child = store.put(Image.new("RGB", SIZE, "red"), parent=original, tool="x")["id"]
    save_catalog(store, catalog_for(original))
    assert load_catalog(store, child)["image_id"] == original
    assert load_catalog(store, store.put(Image.new("RGB", SIZE, "blue"))["id"]) is None


@pytest.mark.parametrize(
    ("region", "message"),
    [
        ([0.2, 0.2, 1.2, 0.5], "must lie in 0..1"),
        ([-0.1, 0.2, 0.5, 0.5], "must lie in 0..1"),
        ([0.6, 0.2, 0.5, 0.5], "empty or inverted"),
        ([0.2, 0.5, 0.5, 0.5], "empty or inverted"),
        ([0.2, 0.5, 0.5], "needs 4 numbers"),
        ([0.2, "a", 0.5, 0.6], "needs 4 numbers"),
        ([0.2, float("nan"), 0.5, 0.6], "finite"),
        ("[0.1, 0.2,", "could not read box"),
        ("the bottle", "unknown region"),
        ("", "unknown region"),
        ("mask:", "needs an image id"),
        (42, "must be a string or a list"),
        (None, "must be a string or a list"),
    ],
)
def test_invalid_regions_raise_clear_errors(region, message):
    with pytest.raises(RegionError, match=message):
        region_mask(region, SIZE, catalog=catalog_for("img"))


def test_unknown_catalog_id_lists_the_known_ones():
    with pytest.raises(RegionError, match=r"unknown region id 'r9'; this image has: r1, r2"):
        region_mask("r9", SIZE, catalog=catalog_for("img"))


def test_catalog_id_without_catalog():
    with pytest.raises(RegionError, match="needs a region catalog"):
        region_mask("r1", SIZE)


def test_background_without_foreground():
    catalog = catalog_for("img")
    catalog["regions"] = catalog["regions"][:1]  # only text
    with pytest.raises(RegionError, match="needs a foreground object"):
        region_mask("background", SIZE, catalog=catalog)


def test_unknown_mask_image(store):
    with pytest.raises(RegionError, match="unknown mask image 'deadbeefdeadbeefdeadbeef'"):
        region_mask("mask:deadbeefdeadbeefdeadbeef", SIZE, store=store)
    with pytest.raises(RegionError, match="not an image id"):
        region_mask("mask:deadbeef", SIZE, store=store)


def test_empty_mask_image(store):
    empty = store.put(Image.new("L", SIZE, 0))["id"]
    with pytest.raises(RegionError, match="is empty on this image"):
        region_mask(f"mask:{empty}", SIZE, store=store)


def test_feather_and_blend_keep_outside_exactly():
    rng = np.random.default_rng(0)
    original = Image.fromarray(rng.integers(0, 256, (100, 200, 3), dtype=np.uint8))
    edited = Image.new("RGB", SIZE, (255, 0, 0))
    hard = region_mask([0.25, 0.25, 0.75, 0.75], SIZE)
    soft = feather(hard, 4)
    assert 0 < soft[25, 60] < 1 and soft[50, 100] == 1.0 and soft[0, 0] == 0.0
    result = np.asarray(blend(original, edited, soft))
    outside = soft == 0
    assert np.array_equal(result[outside], np.asarray(original)[outside])
    assert (result[soft == 1] == [255, 0, 0]).all()
    assert np.array_equal(feather(hard, 0), hard)


def _text_scene() -> tuple[np.ndarray, dict[str, tuple[int, int, int, int]]]:
    """A backdrop gradient with white "NEW" on an orange badge, dark "Hello" on the backdrop and yellow "SALE" on
    a band across the whole width; returns the pixels and the text boxes (left, top, right, bottom)."""
    from PIL import ImageDraw

    from pixplan.tools.text import load_font

    width, height = 400, 240
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    backdrop = (1 - ramp) * np.array([235, 225, 200], np.float32) + ramp * np.array(
        [205, 180, 140], np.float32
    )
    image = Image.fromarray(np.broadcast_to(backdrop, (height, width, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 30, 120, 110), fill=(230, 80, 0))  # 1.6 text heights past NEW's grown box
    draw.rectangle((0, 160, width - 1, 215), fill=(30, 70, 50))
    font = load_font(24)
    boxes = {}
    for text, centre, color in (
        ("NEW", (80, 70), (255, 255, 255)),
        ("Hello", (290, 70), (30, 30, 40)),
        ("SALE", (200, 188), (255, 220, 90)),
    ):
        draw.text(centre, text, font=font, fill=color, anchor="mm")
        boxes[text] = draw.textbbox(centre, text, font=font, anchor="mm")
    return np.asarray(image), boxes


def test_text_mask_on_pixels_is_the_glyphs_and_their_badge_not_the_background_between_them():
    rgb, boxes = _text_scene()
    size = (rgb.shape[1], rgb.shape[0])
    regions = [
        {"id": f"r{n}", "box": pixels_to_box(*box, size), "kind": "text", "label": text, "text": text}
        for n, (text, box) in enumerate(boxes.items(), start=1)
    ]
    mask = text_mask(regions, size, rgb) > 0
    pixels = rgb.astype(int)
    badge = np.abs(pixels - [230, 80, 0]).max(axis=-1) < 10
    assert badge.sum() > 4000 and mask[badge].all()  # the whole badge, well beyond NEW's box
    for text in ("Hello", "SALE"):
        left, top, right, bottom = boxes[text]
        behind = pixels[(top + bottom) // 2, left - 10]  # the backdrop beside Hello, the band beside SALE
        box = (slice(top - 6, bottom + 6), slice(left - 6, right + 6))  # where the grown box was all text
        difference = np.abs(pixels[box] - behind).max(axis=-1)
        assert mask[box][difference > 40].all(), f"{text}'s glyphs are text"
        plain = cv2.erode((difference < 8).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        assert plain.sum() > 100 and not mask[box][plain].any(), f"the background inside {text}'s box is not"
    assert not mask[165:212, :150].any() and not mask[165:212, 260:].any()  # the band beside SALE
    assert not mask[:150, 140:250].any()  # between the badge and Hello nothing is text


def test_background_without_a_stored_mask_uses_the_text_layer_of_the_catalog_image(store):
    rgb, boxes = _text_scene()
    size = (rgb.shape[1], rgb.shape[0])
    image_id = store.put(Image.fromarray(rgb))["id"]
    regions = [
        {"id": f"r{n}", "box": pixels_to_box(*box, size), "kind": "text", "label": text, "text": text}
        for n, (text, box) in enumerate(boxes.items(), start=1)
    ]
    product = {"id": "r4", "box": [0.8, 0.0, 1.0, 0.1], "kind": "object", "label": "product"}
    catalog = {"image_id": image_id, "width": size[0], "height": size[1], "regions": [*regions, product]}
    background = region_mask("background", size, catalog=catalog, store=store)
    kept = np.maximum(region_mask("r4", size, catalog=catalog), text_mask(regions, size, rgb))
    np.testing.assert_array_equal(background, 1.0 - kept)
    child = store.put(Image.new("RGB", size, "red"), parent=image_id, tool="x")["id"]
    save_catalog(store, catalog)  # a derived image's 'background' keeps out the text of the catalog's image
    np.testing.assert_array_equal(
        region_mask("background", size, catalog=load_catalog(store, child), store=store), background
    )
