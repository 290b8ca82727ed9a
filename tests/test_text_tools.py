"""Text tools on rendered ads and real photographs: OCR reads the new text back, the rest stays as it was."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from langchain_core.tools import ToolException
from PIL import Image, ImageDraw

from pixplan.tools.perception import build_catalog, read_text
from pixplan.tools.regions import box_to_pixels, region_mask
from pixplan.tools.store import ImageStore
from pixplan.tools.text import (
    _largest_rectangle,
    add_text,
    fit_font_size,
    load_font,
    placement_box,
    replace_text,
    text_bbox,
)


def call(tool, config, **args):
    """Invoke a tool as a model's tool call would; returns (content, artifact)."""
    message = tool.invoke(
        {"type": "tool_call", "id": "call-1", "name": tool.name, "args": args}, config=config
    )
    return message.content, message.artifact


def changed(before: Image.Image, after: Image.Image, threshold: int = 8) -> np.ndarray:
    difference = np.abs(np.asarray(before, np.int16) - np.asarray(after, np.int16)).max(axis=-1)
    return difference > threshold


@pytest.fixture(scope="module")
def ad(tmp_path_factory, make_ad):
    """A rendered ad, stored and catalogued once for the module: (store, config, image id, image, layout)."""
    store = ImageStore(tmp_path_factory.mktemp("store"))
    image, layout = make_ad(photo="coffee", headline="SUMMER SALE", caption="Only $9.99 this week")
    ref = store.put(image)
    build_catalog(store, ref["id"])
    return store, {"configurable": {"store_dir": str(store.root)}}, ref["id"], image, layout


def test_replace_text_erases_the_old_words_and_reads_back_the_new(ad):
    store, config, image_id, image, layout = ad
    content, ref = call(replace_text, config, image_id=image_id, region="r1", text="WINTER SALE")
    assert ref["parent"] == image_id and ref["tool"] == "replace_text" and ref["args"]["region"] == "r1"
    assert ref["id"] in content
    after = store.get(ref["id"])
    headline = [value / 1000 for value in layout["headline"]]
    read = read_text(after, [headline[0] - 0.03, headline[1] - 0.02, headline[2] + 0.03, headline[3] + 0.02])
    assert "WINTER SALE" in read and "SUMMER" not in read
    # Nothing changes away from the text line: the photo, the rest of the band, the caption.
    moved = changed(image, after, threshold=0)
    left, top, right, bottom = layout["headline"]
    outside = moved.copy()
    outside[top - 30 : bottom + 30, left - 40 : right + 40] = False
    assert not outside.any()


def test_replaced_text_keeps_the_colour_and_the_erase_is_clean(ad):
    store, config, image_id, _image, layout = ad
    _, ref = call(replace_text, config, image_id=image_id, region="r1", text="SALE")
    after = np.asarray(store.get(ref["id"]), dtype=np.int16)
    left, top, right, bottom = layout["headline"]
    # The old letters at both ends of the line are gone: band colour only (a shorter word, centred).
    band = np.array([30, 70, 50])
    for strip in (after[top:bottom, left : left + 80], after[top:bottom, right - 80 : right]):
        assert np.abs(strip - band).max() <= 12
    # The new letters are drawn in the old letters' yellow.
    glyphs = after[top:bottom, left:right].reshape(-1, 3)
    yellow = glyphs[np.abs(glyphs - np.array([255, 220, 90])).max(axis=1) <= 20]
    assert len(yellow) > 1500


def test_replace_text_in_a_box_finds_the_text_with_ocr(ad):
    store, config, image_id, image, _layout = ad
    _, ref = call(replace_text, config, image_id=image_id, region=[0.0, 0.9, 1.0, 1.0], text="Now $4.99")
    after = store.get(ref["id"])
    assert read_text(after, [0.0, 0.9, 1.0, 1.0]) == "Now $4.99"
    moved = changed(image, after, threshold=0)
    assert not moved[: int(0.9 * 1000) - 20].any()


def test_replace_text_errors_say_what_to_do(ad):
    _, config, image_id, _, _ = ad
    with pytest.raises(ToolException, match="non-empty"):
        call(replace_text, config, image_id=image_id, region="r1", text="  ")
    with pytest.raises(ToolException, match="unknown colour"):
        call(replace_text, config, image_id=image_id, region="r1", text="SALE", color="blurple")
    with pytest.raises(ToolException, match="unknown region id 'r9'"):
        call(replace_text, config, image_id=image_id, region="r9", text="SALE")
    with pytest.raises(ToolException, match="no text found"):
        call(replace_text, config, image_id=image_id, region=[0.3, 0.2, 0.6, 0.5], text="SALE")


def test_replace_text_on_a_photograph_keeps_the_texture_around_the_letters(store, tool_config):
    photo = Image.fromarray(skimage.data.chelsea()).resize((600, 400))
    ImageDraw.Draw(photo).text((300, 60), "CAT FOOD", font=load_font(56), fill=(255, 255, 255), anchor="mm")
    ref = store.put(photo)
    _, out = call(replace_text, tool_config, image_id=ref["id"], region=[0.1, 0.03, 0.9, 0.28], text="TREATS")
    after = store.get(out["id"])
    # The fur between and around the letters is kept: most of the box is unchanged.
    left, top, right, bottom = box_to_pixels([0.1, 0.03, 0.9, 0.28], photo.size)
    assert changed(photo, after)[top:bottom, left:right].mean() < 0.5
    # White, like the old text.
    new = np.asarray(after)[top:bottom, left:right].reshape(-1, 3)
    assert (new.min(axis=1) > 240).sum() > 800


def test_add_text_contrasts_with_a_light_background_and_stays_in_its_box(ad):
    store, config, image_id, image, _ = ad
    box = [0.05, 0.015, 0.95, 0.11]
    _, ref = call(add_text, config, image_id=image_id, region=box, text="Eco-friendly coffee")
    after = store.get(ref["id"])
    moved = changed(image, after, threshold=0)
    left, top, right, bottom = box_to_pixels(box, image.size)
    assert moved[top:bottom, left:right].mean() > 0.05
    moved[top:bottom, left:right] = False
    assert not moved.any()
    ink = np.asarray(after)[top:bottom, left:right][changed(image, after)[top:bottom, left:right]]
    assert np.median(ink.mean(axis=1)) < 80  # dark text on the light gradient
    assert read_text(after, box) == "Eco-friendly coffee"


def test_add_text_is_white_on_a_dark_band(ad):
    store, config, image_id, image, layout = ad
    band = [value / 1000 for value in layout["band"]]
    _, ref = call(add_text, config, image_id=image_id, region=band, text="Fair trade")
    after = np.asarray(store.get(ref["id"]))
    ink = after[changed(image, store.get(ref["id"]), threshold=60)]
    assert len(ink) > 500 and np.median(ink.min(axis=1)) > 200


def test_add_text_in_the_background_avoids_the_product_and_existing_text(ad):
    store, config, image_id, image, layout = ad
    _, ref = call(add_text, config, image_id=image_id, region="background", text="Roasted fresh every day")
    moved = changed(image, store.get(ref["id"]))
    assert moved.sum() > 2000
    catalog = store.get_json(f"catalog-{image_id}")
    product = region_mask("r3", image.size, catalog=catalog, store=store) > 0
    assert not (moved & product).any()
    for name in ("headline", "caption"):
        left, top, right, bottom = layout[name]
        assert not moved[top:bottom, left:right].any()


def test_font_fitting_and_free_rectangles():
    size = fit_font_size("SUMMER SALE", 400, 60, max_size=200)
    left, top, right, bottom = text_bbox("SUMMER SALE", size)
    assert right - left <= 400 and bottom - top <= 60
    assert right - left > 360 or bottom - top > 54  # as large as fits
    grid = np.zeros((10, 12), bool)
    grid[2:7, 3:11] = True
    grid[:, :2] = True
    assert _largest_rectangle(grid) == (3, 2, 11, 7)
    assert _largest_rectangle(grid, aspect=0.2) == (0, 0, 2, 10)  # a tall thing prefers the tall strip
    mask = np.ones((400, 600), np.float32)
    mask[80:300, 200:400] = 0
    assert placement_box(mask, aspect=6.0) == (0, 300, 600, 400)  # a wide caption: the bottom strip


def test_tool_schemas_show_the_model_only_its_arguments():
    schema = add_text.tool_call_schema.model_json_schema()
    assert set(schema["properties"]) == {"image_id", "region", "text", "color", "effect"}
    assert schema["properties"]["effect"]["enum"] == ["auto", "none", "shadow", "outline"]
    assert "headline" in add_text.description
    assert set(replace_text.tool_call_schema.model_json_schema()["properties"]) == {
        "image_id",
        "region",
        "text",
        "color",
    }


def test_replacing_twice_keeps_the_size_of_the_current_words(ad):
    store, config, image_id, _, layout = ad
    _, first = call(replace_text, config, image_id=image_id, region="r1", text="SALE")
    _, second = call(replace_text, config, image_id=first["id"], region="r1", text="WINTER SALE")
    _, direct = call(replace_text, config, image_id=image_id, region="r1", text="WINTER SALE")
    left, top, right, bottom = layout["headline"]

    def ink_height(image_id: str) -> int:
        crop = np.asarray(store.get(image_id), np.int16)[top - 30 : bottom + 30, left - 40 : right + 40]
        rows = np.nonzero((np.abs(crop - np.array([255, 220, 90])).max(axis=-1) <= 40).any(axis=1))[0]
        return int(rows.max() - rows.min())

    assert abs(ink_height(second["id"]) - ink_height(direct["id"])) <= 2
    assert "SALE" not in read_text(store.get(second["id"]), [0.0, 0.72, 0.2, 0.88])  # no leftovers


def test_load_font_falls_back_to_pillows_scalable_font(monkeypatch, tmp_path):
    import pixplan.tools.text as text_module

    if text_module.FONT_PATH.exists():
        assert load_font(40).path == str(text_module.FONT_PATH)
    monkeypatch.setattr(text_module, "FONT_PATH", tmp_path / "missing.ttf")
    load_font.cache_clear()
    try:
        fallback = load_font(40)
        assert fallback.path != str(tmp_path / "missing.ttf")
        assert fallback.getbbox("H")[3] - fallback.getbbox("H")[1] > 20  # scalable: 40 px is large
    finally:
        load_font.cache_clear()


@pytest.mark.parametrize(
    ("case", "text_color"),
    [("straddles a band's edge", (255, 220, 90)), ("lies on a busy photograph", (255, 230, 0))],
)
def test_replace_text_leaves_no_ghosts_of_the_old_letters(store, tool_config, make_ad, case, text_color):
    """Beyond the new, shorter text the old letters are gone: the background comes back as it was, within
    what inpainting can guess, and no pixel keeps the old text's colour."""
    if case == "straddles a band's edge":  # the text's box holds the band, its backdrop and the text
        clean, _ = make_ad(size=(600, 600), headline="", caption="")
        centre, words, size = (300, 428), "HALF IN HALF OUT", 40
    else:
        clean = Image.fromarray(skimage.data.astronaut()).resize((512, 512))
        centre, words, size = (256, 460), "Explore more", 40
    image = clean.copy()
    draw = ImageDraw.Draw(image)
    draw.text(centre, words, font=load_font(size), fill=text_color, anchor="mm")
    left, top, right, bottom = draw.textbbox(centre, words, font=load_font(size), anchor="mm")
    image_id = store.put(image)["id"]
    region = [value / image.width for value in (left - 10, top - 10, right + 10, bottom + 10)]
    _, ref = call(replace_text, tool_config, image_id=image_id, region=region, text="OK")
    after = np.asarray(store.get(ref["id"]), np.int16)
    truth = np.asarray(clean, np.int16)
    # Both ends of the old line, clear of the new word in the middle.
    ends = np.zeros(after.shape[:2], dtype=bool)
    ends[top - 4 : bottom + 4, left - 4 : left + (right - left) // 3] = True
    ends[top - 4 : bottom + 4, right - (right - left) // 3 : right + 4] = True
    remnants = (np.abs(after - text_color).max(axis=-1) < 60) & (
        np.abs(truth - text_color).max(axis=-1) >= 100
    )
    assert remnants[ends].sum() <= 20, f"{remnants[ends].sum()} pixels keep the old text's colour"
    assert np.abs(after - truth).max(axis=-1)[ends].mean() < 25


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """One benchmark task per layout (left, right, top, bottom), from a small generated benchmark."""
    from pixplan.training.benchmark import generate_tasks

    tasks = generate_tasks(tmp_path_factory.mktemp("bench"), per_family=1)
    first = {}
    for task in tasks:
        first.setdefault(task.meta["spec"]["layout"], task)
    assert set(first) == {"left", "right", "top", "bottom"}
    return first


@pytest.mark.parametrize("layout", ["left", "right", "top", "bottom"])
@pytest.mark.parametrize(
    ("first", "second"),
    [("#0d0221", "#241734"), ("#2e7d32", "#81c784"), ("#e3f2fd", "#90caf9")],
    ids=["dark", "green", "light"],
)
def test_replace_text_after_replace_background_leaves_no_trace(layouts, tmp_path, layout, first, second):
    """The background is replaced (the text kept out, with a band of the old background around its letters),
    then the slogan: OCR of the slogan's region reads only the new words, the rest of the old line is the new
    backdrop and nothing else, and the new words contrast with it (WCAG AA, 4.5:1)."""
    from pixplan.graph.metric_judge import read_region_text
    from pixplan.tools.text import MIN_CONTRAST_RATIO, contrast_ratio
    from pixplan.training.systems import run_calls
    from pixplan.training.tasks import prepare

    task = layouts[layout]
    store = ImageStore(tmp_path / "store")
    image, catalog = prepare(task, store)
    background = {
        "tool": "replace_background",
        "region": "background",
        "args": {"fill": "linear_gradient", "color": first, "second_color": second, "angle": 90.0},
    }
    replaced = run_calls(store, image, [background])
    outcome = run_calls(
        store, image, [background, {"tool": "replace_text", "region": "r2", "args": {"text": "Fresh"}}]
    )
    assert not [step["error"] for step in outcome.steps if "error" in step]
    after = store.get(outcome.image_id)
    after.save(tmp_path / "after.png")
    mask = region_mask("r2", after.size, catalog=catalog, store=store)
    read = read_region_text(after, mask)
    assert read.strip().lower() == "fresh", f"{task.id}: the slogan's region reads {read!r}"
    # Beyond the new word, the old line's pixels are the backdrop: each row as flat as the new gradient.
    slogan = next(entry for entry in task.catalog["regions"] if entry["id"] == "r2")
    left, top, right, bottom = box_to_pixels(slogan["box"], after.size)
    crop = np.asarray(after, np.float32)[top:bottom, left:right]
    before = np.asarray(store.get(replaced.image_id), np.float32)[top:bottom, left:right]
    backdrop = np.median(np.concatenate([crop[:, :3], crop[:, -3:]], axis=1), axis=1, keepdims=True)
    ink = np.abs(crop - backdrop).max(axis=-1) > 40
    columns = np.flatnonzero(ink.any(axis=0))
    ends = np.ones(ink.shape, dtype=bool)
    ends[:, max(0, columns[0] - 6) : columns[-1] + 7] = False
    old_ink = np.abs(before - backdrop).max(axis=-1) > 40
    assert old_ink[ends].sum() > 50  # the old words did reach there
    residue = np.abs(crop - backdrop).max(axis=-1)[ends]
    assert (residue > 24).mean() < 0.005, (
        f"{task.id}: {(residue > 24).sum()} pixels keep a trace of the old words"
    )
    # The new word contrasts with its backdrop.
    word = crop[ink]
    distance = np.abs(word - backdrop.mean(axis=(0, 1))).max(axis=-1)
    colour = np.median(word[distance >= np.percentile(distance, 50)], axis=0)
    ratio = contrast_ratio(colour, np.median(backdrop.reshape(-1, 3), axis=0))
    assert ratio >= MIN_CONTRAST_RATIO, f"{task.id}: the new text's contrast is {ratio:.1f}:1"
