"""Badges and icons: drawn inside their region only, shaped and coloured as asked, text legible."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from langchain_core.tools import ToolException
from PIL import Image
from pydantic import ValidationError

from pixplan.tools.graphics import ICONS, add_badge, add_icon
from pixplan.tools.perception import build_catalog, read_text
from pixplan.tools.regions import box_to_pixels, region_mask
from pixplan.tools.store import ImageStore


def call(tool, config, **args):
    """Invoke a tool as a model's tool call would; returns (content, artifact)."""
    message = tool.invoke(
        {"type": "tool_call", "id": "call-1", "name": tool.name, "args": args}, config=config
    )
    return message.content, message.artifact


def changed(before: Image.Image, after: Image.Image, threshold: int = 0) -> np.ndarray:
    difference = np.abs(np.asarray(before, np.int16) - np.asarray(after, np.int16)).max(axis=-1)
    return difference > threshold


@pytest.fixture(scope="module")
def ad(tmp_path_factory, make_ad):
    store = ImageStore(tmp_path_factory.mktemp("store"))
    image, layout = make_ad(photo="rocket", headline="SUMMER SALE", caption="Only $9.99 this week")
    ref = store.put(image)
    catalog = build_catalog(store, ref["id"])
    return store, {"configurable": {"store_dir": str(store.root)}}, ref["id"], image, layout, catalog


@pytest.mark.parametrize("icon", sorted(ICONS))
def test_icon_is_drawn_square_and_centred_inside_its_box_only(store, tool_config, icon):
    photo = Image.fromarray(skimage.data.astronaut())
    ref = store.put(photo)
    box = [0.55, 0.05, 0.95, 0.3]  # wide: the square icon sits in its middle
    content, out = call(add_icon, tool_config, image_id=ref["id"], region=box, icon=icon)
    assert out["tool"] == "add_icon" and out["args"]["icon"] == icon and out["id"] in content
    moved = changed(photo, store.get(out["id"]))
    left, top, right, bottom = box_to_pixels(box, photo.size)
    inside = moved[top:bottom, left:right].copy()
    assert inside.sum() > 0.1 * (bottom - top) ** 2
    moved[top:bottom, left:right] = False
    assert not moved.any()
    ys, xs = np.nonzero(inside)
    assert abs((xs.min() + xs.max()) / 2 - (right - left) / 2) < 0.06 * (right - left)
    assert 0.75 < (xs.max() - xs.min()) / (ys.max() - ys.min()) < 1.45  # icons keep their (square) aspect
    assert 0.6 * (bottom - top) < ys.max() - ys.min() + 1 <= bottom - top  # as tall as the box allows


def test_icon_colours_default_and_explicit(store, tool_config):
    canvas = Image.new("RGB", (400, 200), (245, 240, 230))
    ref = store.put(canvas)
    _, leaf = call(add_icon, tool_config, image_id=ref["id"], region=[0.0, 0.0, 0.5, 1.0], icon="leaf")
    pixels = np.asarray(store.get(leaf["id"]))[changed(canvas, store.get(leaf["id"]), 60)]
    red, green, blue = np.median(pixels, axis=0)
    assert green > red + 40 and green > blue + 30
    _, star = call(
        add_icon, tool_config, image_id=ref["id"], region=[0.5, 0.0, 1.0, 1.0], icon="star", color="navy"
    )
    pixels = np.asarray(store.get(star["id"]))[changed(canvas, store.get(star["id"]), 60)]
    assert np.abs(np.median(pixels, axis=0) - np.array([0, 0, 128])).max() < 20


@pytest.mark.parametrize(
    ("shape", "box", "aspect"),
    [
        ("circle", [0.78, 0.02, 0.98, 0.22], 1.0),
        ("starburst", [0.02, 0.02, 0.2, 0.2], 1.0),
        ("rounded_rectangle", [0.02, 0.58, 0.3, 0.7], 2.6),
        ("ribbon", [0.3, 0.56, 0.7, 0.7], 3.2),
    ],
)
def test_badge_shapes_fill_their_box_with_their_own_aspect(ad, shape, box, aspect):
    store, config, image_id, image, _, _ = ad
    _, out = call(add_badge, config, image_id=image_id, region=box, text="NEW", shape=shape)
    moved = changed(image, store.get(out["id"]))
    left, top, right, bottom = box_to_pixels(box, image.size)
    inside = moved[top:bottom, left:right].copy()
    moved[top:bottom, left:right] = False
    assert not moved.any()
    ys, xs = np.nonzero(inside)
    width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert abs(width / height - aspect) < 0.15 * aspect
    assert max(width / (right - left), height / (bottom - top)) > 0.9  # as large as the box allows
    # A badge on the light background is red by default, with white text.
    pixels = np.asarray(store.get(out["id"]))[top:bottom, left:right][inside]
    assert (np.abs(pixels - np.array([200, 30, 45])).max(axis=1) < 10).mean() > 0.5
    assert (pixels.min(axis=1) > 240).sum() > 100


def test_badge_text_is_legible(ad):
    store, config, image_id, _image, _, _ = ad
    box = [0.3, 0.56, 0.7, 0.7]
    _, out = call(add_badge, config, image_id=image_id, region=box, text="100% organic", shape="ribbon")
    assert read_text(store.get(out["id"]), box) == "100% organic"


def test_badge_in_the_background_avoids_the_product_and_the_text(ad):
    store, config, image_id, image, layout, catalog = ad
    _, out = call(add_badge, config, image_id=image_id, region="background", text="-30%", shape="starburst")
    moved = changed(image, store.get(out["id"]))
    assert moved.sum() > 5000
    product = region_mask("r3", image.size, catalog=catalog, store=store) > 0
    assert not (moved & product).any()
    for name in ("headline", "caption"):
        left, top, right, bottom = layout[name]
        assert not moved[top:bottom, left:right].any()


def test_graphics_errors_are_clear(ad):
    _, config, image_id, _, _, _ = ad
    with pytest.raises(ToolException, match="non-empty"):
        call(add_badge, config, image_id=image_id, region="whole", text="")
    with pytest.raises(ToolException, match="unknown colour"):
        call(add_icon, config, image_id=image_id, region="whole", icon="sun", color="sunny")
    with pytest.raises(ToolException, match="too small"):
        call(add_icon, config, image_id=image_id, region=[0.5, 0.5, 0.505, 0.505], icon="sun")
    with pytest.raises(ValidationError):
        call(add_icon, config, image_id=image_id, region="whole", icon="cat")


def test_icon_and_shape_names_are_enumerated_for_the_model():
    icon = add_icon.tool_call_schema.model_json_schema()["properties"]["icon"]
    assert icon["enum"] == ["leaf", "recycle", "snowflake", "sun", "star", "heart"]
    shape = add_badge.tool_call_schema.model_json_schema()["properties"]["shape"]
    assert shape["enum"] == ["circle", "rounded_rectangle", "starburst", "ribbon"]
    assert "config" not in add_icon.tool_call_schema.model_json_schema()["properties"]


def test_a_graphic_in_a_shaped_region_sits_in_the_middle_of_the_free_area_with_room_around_it(ad):
    """In the background an icon is not crammed into the first free square it finds: it is centred in the
    largest free area, at most `SHAPED_REGION_FILL` of it and `SHAPED_REGION_MAX_SIDE` of the image's side."""
    from pixplan.tools.graphics import SHAPED_REGION_MAX_SIDE
    from pixplan.tools.text import placement_box

    column = np.zeros((120, 120), np.float32)  # a free column, and a thin free strip along the bottom
    column[:, :40] = 1
    column[110:, :] = 1
    left, top, right, bottom = placement_box(column, aspect=1.0)
    assert (left, right) == (0, 40) and (top + bottom) / 2 > 45  # the whole column, not its top square

    store, config, image_id, image, _layout, _catalog = ad
    _, out = call(add_icon, config, image_id=image_id, region="background", icon="leaf")
    ys, xs = np.nonzero(changed(image, store.get(out["id"]), threshold=8))
    width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert max(width, height) <= SHAPED_REGION_MAX_SIDE * min(image.size) + 2
    assert max(width, height) >= 0.05 * min(image.size)  # still a visible icon
