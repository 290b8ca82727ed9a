"""Classical tools on real photographs and a rendered ad: the region changes as asked, the rest stays."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from langchain_core.tools import ToolException
from PIL import Image, ImageDraw
from pydantic import ValidationError

from pixplan.tools.classical import (
    adjust_tone,
    blur,
    recolor,
    remove_object,
    replace_background,
    sharpen,
    stylize,
)
from pixplan.tools.regions import box_to_pixels, save_catalog

BOX = [0.25, 0.25, 0.75, 0.75]
MARGIN = 8  # pixels around a region's edge left to the feather


def call(tool, image_id: str, config: dict, **args):
    """Invoke a tool as an agent does and return (content, ImageRef)."""
    message = tool.invoke(
        {"type": "tool_call", "id": "t", "name": tool.name, "args": {"image_id": image_id, **args}},
        config=config,
    )
    return message.content, message.artifact


def photo(name: str, size: int = 256) -> Image.Image:
    image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    return image.resize((size, size * image.height // image.width), Image.Resampling.BILINEAR)


def inside_outside(size: tuple[int, int], box: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of a box's interior and of everything well outside it (beyond the feather)."""
    left, top, right, bottom = box_to_pixels(box, size)
    inside = np.zeros((size[1], size[0]), dtype=bool)
    inside[top + MARGIN : bottom - MARGIN, left + MARGIN : right - MARGIN] = True
    near = np.zeros_like(inside)
    near[max(top - MARGIN, 0) : bottom + MARGIN, max(left - MARGIN, 0) : right + MARGIN] = True
    return inside, ~near


def hsv(array: np.ndarray) -> np.ndarray:
    """Float HSV: hue in degrees 0..360, saturation and value 0..1."""
    return cv2.cvtColor(array.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)


def circular_mean_hue(array: np.ndarray, where: np.ndarray) -> float:
    values = hsv(array)
    weights = values[..., 1][where]  # gray pixels have no hue to speak of
    angles = np.deg2rad(values[..., 0][where])
    return float(
        np.rad2deg(np.arctan2((np.sin(angles) * weights).sum(), (np.cos(angles) * weights).sum())) % 360
    )


def hue_distance(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


def laplacian_variance(array: np.ndarray, where: np.ndarray) -> float:
    gray = cv2.cvtColor(array, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(gray, cv2.CV_32F)[where].var())


@pytest.fixture
def put(store):
    """Store an image and return (id, pixels)."""

    def put_image(image: Image.Image) -> tuple[str, np.ndarray]:
        return store.put(image)["id"], np.asarray(image)

    return put_image


@pytest.fixture
def ad(store, make_ad):
    """A rendered ad with a hand-made catalog: r1 the headline, r2 the product photo (no OCR needed)."""
    image, layout = make_ad(size=(400, 400))
    ref = store.put(image)
    width, height = image.size
    left, top, right, bottom = layout["photo"]
    headline = layout["headline"]
    save_catalog(
        store,
        {
            "image_id": ref["id"],
            "width": width,
            "height": height,
            "regions": [
                {
                    "id": "r1",
                    "box": [
                        headline[0] / width,
                        headline[1] / height,
                        headline[2] / width,
                        headline[3] / height,
                    ],
                    "kind": "text",
                    "label": "headline",
                },
                {
                    "id": "r2",
                    "box": [left / width, top / height, right / width, bottom / height],
                    "kind": "object",
                    "label": "product",
                },
            ],
        },
    )
    return ref["id"], np.asarray(image), layout


# ------------------------------------------------------------------------------------------------ recolor


@pytest.mark.parametrize(
    ("name", "target", "target_hue"), [("coffee", "forestgreen", 120), ("astronaut", "#1e90ff", 210)]
)
def test_recolor_moves_hue_to_target_and_keeps_shading_and_outside(
    put, tool_config, name, target, target_hue
):
    image_id, before = put(photo(name))
    content, ref = call(recolor, image_id, tool_config, region=BOX, color=target)
    after = np.asarray(Image.open(f"{tool_config['configurable']['store_dir']}/{ref['id']}.png"))
    inside, outside = inside_outside((before.shape[1], before.shape[0]), BOX)
    assert hue_distance(circular_mean_hue(after, inside), target_hue) < 10
    assert hue_distance(circular_mean_hue(before, inside), target_hue) > 40
    # Shading kept: brightness inside still follows the original's light and shadow.
    value_before, value_after = hsv(before)[..., 2][inside], hsv(after)[..., 2][inside]
    assert np.corrcoef(value_before, value_after)[0, 1] > 0.9
    assert np.array_equal(after[outside], before[outside])
    assert "recolor applied to" in content and ref["id"] in content


def test_recolor_hue_shift_rotates_saturated_pixels(put, tool_config, store):
    image_id, before = put(photo("coffee"))
    _, ref = call(recolor, image_id, tool_config, region="whole", hue_shift=90)
    after = np.asarray(store.get(ref["id"]))
    saturated = (hsv(before)[..., 1] > 0.4) & (hsv(before)[..., 2] > 0.3)
    shift = (hsv(after)[..., 0] - hsv(before)[..., 0])[saturated] % 360
    assert abs(np.median(shift) - 90) < 4


def test_recolor_strength_zero_changes_almost_nothing(put, tool_config, store):
    image_id, before = put(photo("chelsea"))
    _, ref = call(recolor, image_id, tool_config, region="whole", color="red", strength=0.0)
    assert np.abs(np.asarray(store.get(ref["id"])).astype(int) - before).max() <= 1


def test_recolor_bad_arguments(put, tool_config):
    image_id, _ = put(photo("chelsea", 64))
    with pytest.raises(ToolException, match="unknown colour 'blurple'"):
        call(recolor, image_id, tool_config, region="whole", color="blurple")
    with pytest.raises(ToolException, match="needs a target `color`"):
        call(recolor, image_id, tool_config, region="whole")
    with pytest.raises(ValidationError, match="hue_shift"):
        call(recolor, image_id, tool_config, region="whole", hue_shift=400)


# ------------------------------------------------------------------------------------------------ tone


@pytest.mark.parametrize(
    ("args", "measure", "direction"),
    [
        ({"brightness": 0.4}, lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).mean(), 1),
        ({"brightness": -0.4}, lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).mean(), -1),
        ({"contrast": 0.5}, lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).std(), 1),
        ({"contrast": -0.5}, lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).std(), -1),
        ({"saturation": 0.5}, lambda rgb: hsv(rgb)[..., 1].mean(), 1),
        ({"saturation": -0.5}, lambda rgb: hsv(rgb)[..., 1].mean(), -1),
        ({"warmth": 0.5}, lambda rgb: (rgb[..., 0].astype(float) - rgb[..., 2]).mean(), 1),
        ({"warmth": -0.5}, lambda rgb: (rgb[..., 0].astype(float) - rgb[..., 2]).mean(), -1),
    ],
)
def test_adjust_tone_moves_the_region_the_asked_way(put, tool_config, store, args, measure, direction):
    image_id, before = put(photo("astronaut"))
    _, ref = call(adjust_tone, image_id, tool_config, region=BOX, **args)
    after = np.asarray(store.get(ref["id"]))
    inside, outside = inside_outside((before.shape[1], before.shape[0]), BOX)
    rows, columns = np.nonzero(inside)
    crop = (slice(rows.min(), rows.max() + 1), slice(columns.min(), columns.max() + 1))
    change = measure(np.ascontiguousarray(after[crop])) - measure(np.ascontiguousarray(before[crop]))
    assert change * direction > 0.03 * abs(measure(np.ascontiguousarray(before[crop])) or 1)
    assert np.array_equal(after[outside], before[outside])


def test_adjust_tone_full_desaturation_is_gray(put, tool_config, store):
    image_id, _ = put(photo("coffee"))
    _, ref = call(adjust_tone, image_id, tool_config, region="whole", saturation=-1.0)
    after = np.asarray(store.get(ref["id"])).astype(int)
    assert (
        np.abs(after[..., 0] - after[..., 1]).max() <= 1 and np.abs(after[..., 1] - after[..., 2]).max() <= 1
    )


def test_adjust_tone_needs_an_amount(put, tool_config):
    image_id, _ = put(photo("coffee", 64))
    with pytest.raises(ToolException, match="at least one nonzero amount"):
        call(adjust_tone, image_id, tool_config, region="whole")


# ------------------------------------------------------------------------------------------------ background


def test_replace_background_keeps_the_product(ad, tool_config, store):
    image_id, before, layout = ad
    _, ref = call(replace_background, image_id, tool_config, color="#2e7d32")
    after = np.asarray(store.get(ref["id"]))
    left, top, right, bottom = layout["photo"]
    product = (slice(top + MARGIN, bottom - MARGIN), slice(left + MARGIN, right - MARGIN))
    assert np.array_equal(after[product], before[product])
    corner = after[: top - MARGIN, : left - MARGIN].reshape(-1, 3)
    assert np.abs(corner.astype(int) - [0x2E, 0x7D, 0x32]).max() <= 1
    band = after[layout["band"][1] + MARGIN : layout["band"][3] - MARGIN, :20].reshape(-1, 3)
    assert np.abs(band.astype(int) - [0x2E, 0x7D, 0x32]).max() <= 1  # the band is background too


def test_replace_background_needs_a_foreground(put, tool_config):
    image_id, _ = put(photo("chelsea", 64))  # no catalog: no foreground known
    with pytest.raises(ToolException, match="needs a foreground object"):
        call(replace_background, image_id, tool_config, color="white")


@pytest.mark.parametrize("fill", ["linear_gradient", "radial_gradient", "noise", "grain", "stripes", "dots"])
def test_replace_background_patterns(put, tool_config, store, fill):
    image_id, _ = put(photo("chelsea", 200))
    args = {"region": "whole", "fill": fill, "color": "white", "second_color": "black", "scale": 0.1}
    _, ref = call(replace_background, image_id, tool_config, **args)
    gray = cv2.cvtColor(np.asarray(store.get(ref["id"])), cv2.COLOR_RGB2GRAY).astype(float)
    assert gray.std() > 10, "a pattern is not flat"
    assert gray.max() <= 255 and gray.min() >= 0
    if fill == "linear_gradient":  # angle 90: white at the top, black at the bottom
        assert gray[0].mean() > 245 and gray[-1].mean() < 10
        assert np.all(np.diff(gray.mean(axis=1)) <= 0.5)
    if fill == "radial_gradient":
        assert gray[gray.shape[0] // 2, gray.shape[1] // 2] > 245 and gray[0, 0] < 10
    if fill == "stripes":
        assert set(np.unique(gray)) <= {0.0, 255.0}
    _, again = call(replace_background, image_id, tool_config, **args)
    assert again["id"] == ref["id"], "patterns are deterministic for a seed"


# ------------------------------------------------------------------------------------------------ removal


def test_remove_object_fills_from_surroundings(put, tool_config, store):
    xs = np.linspace(0, 1, 240, dtype=np.float32)[None, :, None]
    ys = np.linspace(0, 1, 160, dtype=np.float32)[:, None, None]
    scene = (60 + 150 * xs * np.array([1.0, 0.6, 0.2]) + 40 * ys).astype(np.uint8)  # a smooth wall
    with_object = Image.fromarray(scene)
    ImageDraw.Draw(with_object).ellipse((100, 60, 140, 100), fill=(0, 0, 255))
    image_id, before = put(with_object)
    box = [90 / 240, 50 / 160, 150 / 240, 110 / 160]
    _, ref = call(remove_object, image_id, tool_config, region=box)
    after = np.asarray(store.get(ref["id"])).astype(int)
    hole = after[60:100, 100:140]
    assert (hole[..., 2] - hole[..., 0]).max() < 0, "no blue left"
    assert np.abs(hole - scene[60:100, 100:140]).mean() < 8, "the wall continues through the hole"
    _, outside = inside_outside(with_object.size, box)
    assert np.array_equal(after[outside], before[outside])


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_remove_object_large_hole_and_methods(put, tool_config, store, method):
    image_id, before = put(photo("astronaut", 320))
    _, ref = call(remove_object, image_id, tool_config, region=[0.1, 0.1, 0.9, 0.9], method=method)
    after = np.asarray(store.get(ref["id"]))
    assert after.shape == before.shape and not np.array_equal(after, before)
    centre = after[150:170, 150:170].astype(float)
    assert centre.std(axis=(0, 1)).max() < 30, "a big hole is filled smoothly"


def test_remove_object_refuses_whole_image(put, tool_config):
    image_id, _ = put(photo("coffee", 64))
    with pytest.raises(ToolException, match="smaller than the whole image"):
        call(remove_object, image_id, tool_config, region="whole")


# ------------------------------------------------------------------------------------------------ style


def test_stylize_styles(put, tool_config, store):
    image_id, before = put(photo("coffee"))
    results = {
        style: np.asarray(store.get(call(stylize, image_id, tool_config, style=style)[1]["id"])).astype(int)
        for style in ("warm", "cool", "vintage", "mono", "posterize")
    }
    warmth = lambda rgb: (rgb[..., 0] - rgb[..., 2]).mean()  # noqa: E731
    original = before.astype(int)
    assert warmth(results["warm"]) > warmth(original) + 10
    assert warmth(results["cool"]) < warmth(original) - 10
    mono = results["mono"]
    assert (mono[..., 0] == mono[..., 1]).all() and (mono[..., 1] == mono[..., 2]).all()
    assert all(len(np.unique(results["posterize"][..., channel])) <= 4 for channel in range(3))
    vintage = results["vintage"].reshape(-1, 3).mean(axis=0)
    assert vintage[0] > vintage[1] > vintage[2], "sepia: red over green over blue"
    assert results["vintage"][0, 0].sum() < results["vintage"][80, 128].sum(), "darker corners"


def test_stylize_on_a_region_keeps_the_rest(put, tool_config, store):
    image_id, before = put(photo("astronaut"))
    _, ref = call(stylize, image_id, tool_config, style="mono", region=BOX)
    after = np.asarray(store.get(ref["id"]))
    inside, outside = inside_outside((before.shape[1], before.shape[0]), BOX)
    assert hsv(after)[..., 1][inside].max() < 0.02
    assert np.array_equal(after[outside], before[outside])


# ------------------------------------------------------------------------------------------------ blur, sharpen


def test_blur_and_sharpen_change_detail_only_inside(put, tool_config, store):
    image_id, before = put(photo("astronaut"))
    inside, outside = inside_outside((before.shape[1], before.shape[0]), BOX)
    detail = laplacian_variance(before, inside)
    blurred = np.asarray(store.get(call(blur, image_id, tool_config, region=BOX, radius=3)[1]["id"]))
    sharpened = np.asarray(store.get(call(sharpen, image_id, tool_config, region=BOX, amount=1.5)[1]["id"]))
    assert laplacian_variance(blurred, inside) < 0.2 * detail
    assert laplacian_variance(sharpened, inside) > 1.5 * detail
    assert np.array_equal(blurred[outside], before[outside])
    assert np.array_equal(sharpened[outside], before[outside])


def test_large_radius_blur_is_smooth(put, tool_config, store):
    image_id, before = put(photo("chelsea"))
    _, ref = call(blur, image_id, tool_config, region="whole", radius=20)
    after = np.asarray(store.get(ref["id"]))
    everywhere = np.ones(after.shape[:2], dtype=bool)
    assert laplacian_variance(after, everywhere) < 0.02 * laplacian_variance(before, everywhere)


# ------------------------------------------------------------------------------------------------ common


def test_lineage_is_recorded(ad, tool_config, store):
    image_id, _, _ = ad
    _, ref = call(adjust_tone, image_id, tool_config, region="r2", warmth=0.3)
    stored = store.ref(ref["id"])
    assert stored["parent"] == image_id and stored["tool"] == "adjust_tone"
    assert stored["args"]["region"] == "r2" and stored["args"]["warmth"] == 0.3
    # A derived image keeps its root's catalog, so regions still resolve on it.
    _, second = call(recolor, ref["id"], tool_config, region="r1", color="gold")
    assert store.lineage(second["id"])[0]["id"] == image_id


@pytest.mark.parametrize(
    ("region", "message"),
    [
        ("r9", "unknown region id 'r9'"),
        ([0.5, 0.5, 0.2, 0.9], "empty or inverted"),
        ("sky", "unknown region"),
    ],
)
def test_region_errors_are_tool_errors(ad, tool_config, region, message):
    image_id, _, _ = ad
    with pytest.raises(ToolException, match=message):
        call(blur, image_id, tool_config, region=region)


def test_unknown_image_id(tool_config):
    with pytest.raises(ToolException, match="unknown image_id 'nope'"):
        call(blur, "nope", tool_config, region="whole")


def test_real_catalog_background_keeps_product(store, tool_config, make_ad):
    """End to end with perception's own catalog (OCR and saliency) instead of a hand-made one."""
    from pixplan.tools.perception import build_catalog

    image, layout = make_ad(size=(400, 400))
    image_id = store.put(image)["id"]
    catalog = build_catalog(store, image_id)
    assert any(entry["kind"] == "object" for entry in catalog["regions"])
    _, ref = call(
        replace_background, image_id, tool_config, fill="noise", color="#dcedc8", second_color="#33691e"
    )
    before, after = np.asarray(image).astype(int), np.asarray(store.get(ref["id"])).astype(int)
    left, top, right, bottom = layout["photo"]
    product = (slice(top + 20, bottom - 20), slice(left + 20, right - 20))
    assert np.abs(after[product] - before[product]).mean() < 3
    assert np.abs(after[:30, :30] - before[:30, :30]).mean() > 20


def test_apply_edit_takes_exactly_one_edit_form(put, tool_config, store):
    from pixplan.tools.editing import apply_edit

    image_id, before = put(photo("coffee", 64))
    inverted = Image.fromarray(255 - before)
    _, by_image = apply_edit(
        tool="invert",
        image_id=image_id,
        region="whole",
        args={},
        edit=lambda *_: inverted,
        config=tool_config,
    )
    _, by_array = apply_edit(
        tool="invert",
        image_id=image_id,
        region="whole",
        args={},
        edit_array=lambda rgb, *_: 255 - rgb,
        config=tool_config,
    )
    assert by_image["id"] == by_array["id"]
    assert np.array_equal(np.asarray(store.get(by_array["id"])), 255 - before)
    with pytest.raises(TypeError, match="exactly one"):
        apply_edit(tool="x", image_id=image_id, region="whole", args={}, config=tool_config)


def test_real_catalog_background_leaves_the_text(store, tool_config, make_ad):
    """'background' excludes the catalog's text layer: a new background keeps the headline's and caption's
    glyphs (their anti-aliased rims blend a little with the new colour through the feathered edge)."""
    from pixplan.tools.perception import build_catalog, read_text

    image, layout = make_ad(size=(400, 400))
    image_id = store.put(image)["id"]
    build_catalog(store, image_id)
    _, ref = call(replace_background, image_id, tool_config, region="background", color="#2e7d32")
    before, after = np.asarray(image).astype(int), np.asarray(store.get(ref["id"])).astype(int)
    for name in ("headline", "caption"):
        left, top, right, bottom = layout[name]
        ink = (slice(top - 2, bottom + 2), slice(left - 2, right + 2))
        behind = before[top - 4, left - 4]  # the band behind the headline, the backdrop behind the caption
        glyphs = np.abs(before[ink] - behind).sum(axis=-1) > 90
        change = np.abs(after[ink] - before[ink]).max(axis=-1)
        assert glyphs.sum() > 500
        assert change[glyphs].max() <= 16 and np.percentile(change[glyphs], 95) <= 8, f"the {name} changed"
        plain = (
            cv2.erode((np.abs(before[ink] - behind).max(axis=-1) < 8).astype(np.uint8), np.ones((7, 7))) > 0
        )
        assert (change[plain] > 30).mean() > 0.95, f"the background between the {name}'s letters stayed"
    band_top, band_bottom = layout["band"][1], layout["band"][3]
    assert read_text(store.get(ref["id"]), [0.0, band_top / 400, 1.0, band_bottom / 400]) == "SUMMER SALE"
    assert read_text(store.get(ref["id"]), [0.0, 0.9, 1.0, 1.0]) == "Only $9.99 this week"
    green = np.array([0x2E, 0x7D, 0x32])
    assert np.abs(after[:30, :30] - green).max() <= 1  # the backdrop's corner
    assert (
        np.abs(after[band_top + 8 : band_bottom - 8, :20] - green).max() <= 1
    )  # the band beside the headline


EXAMPLE_AD = Path(__file__).parents[1] / "examples" / "ad.png"


def test_real_catalog_background_is_replaced_around_the_letters_and_keeps_the_badges(store, tool_config):
    """On the bundled ad, 'background' reaches between and around the text lines (no rectangle of the old
    backdrop is left around them), while the orange NEW circle and $4.99 pill that carry text are kept whole."""
    from pixplan.tools.perception import build_catalog
    from pixplan.tools.regions import text_margin

    image = Image.open(EXAMPLE_AD).convert("RGB")
    image_id = store.put(image)["id"]
    catalog = build_catalog(store, image_id)
    _, ref = call(replace_background, image_id, tool_config, region="background", color="#2e7d32")
    before, after = np.asarray(image).astype(int), np.asarray(store.get(ref["id"])).astype(int)
    change = np.abs(after - before).max(axis=-1)
    lines = {
        entry["text"]: box_to_pixels(entry["box"], image.size)
        for entry in catalog["regions"]
        if entry["kind"] == "text"
    }
    assert {"NEW", "Morning Brew", "$4.99"} <= set(lines)
    # The flat backdrop inside the boxes the text layer used to be (each line's box grown by `text_margin`).
    gray, window = np.asarray(image.convert("L")), np.ones((9, 9), np.uint8)
    flat = cv2.dilate(gray, window).astype(int) - cv2.erode(gray, window) <= 6
    for text in ("Morning Brew", "Taste the difference", "ACME CO"):
        left, top, right, bottom = next(
            box for line, box in lines.items() if line.replace(" ", "") == text.replace(" ", "")
        )
        grow = text_margin(bottom - top, image.size)
        former = (slice(top - grow, bottom + grow), slice(left - grow, right + grow))
        beige = flat & (np.abs(before - before[top - grow, left - grow]).max(axis=-1) < 20)
        assert beige[former].sum() > 300
        assert (change[former][beige[former]] > 30).mean() > 0.98, f"the backdrop around {text!r} stayed"
    orange = (before[..., 0] > 200) & (before[..., 1] < 120) & (before[..., 2] < 60)
    core = cv2.erode(orange.astype(np.uint8), np.ones((11, 11))) > 0  # beyond the feathered rim's reach
    for text in ("NEW", "$4.99"):
        left, top, right, bottom = lines[text]
        reach = bottom - top
        near = np.zeros_like(core)
        near[max(0, top - reach) : bottom + reach, max(0, left - reach) : right + reach] = True
        assert (core & near).sum() > 2000
        assert change[core & near].max() <= 2, f"the badge behind {text!r} changed"
