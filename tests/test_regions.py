"""Regions: every form a tool's `region` argument takes, and a clear error for every invalid one."""

from __future__ import annotations

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
    with pytest.raises(RegionError, match="unknown mask image 'deadbeef'"):
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
