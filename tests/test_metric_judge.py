"""The metric judge on hand-built images: every check type, wrap-around hue, step and final judgements."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from pixplan.graph.checks import (
    Changed,
    ChecklistItem,
    ColorInRange,
    NewElement,
    Preserved,
    TextAbsent,
    TextContains,
)
from pixplan.graph.metric_judge import MetricJudge, evaluate_check, region_stats
from pixplan.graph.schemas import JudgeFailure, JudgeRequest, Verdict
from pixplan.tools.regions import save_catalog

TEXT_BOX = [0.05, 0.05, 0.95, 0.25]
PHOTO_BOX = [0.3, 0.4, 0.7, 0.9]


def _ad(text: str = "Fresh coffee daily", background=(200, 180, 150)) -> Image.Image:
    image = Image.new("RGB", (320, 320), background)
    draw = ImageDraw.Draw(image)
    draw.rectangle([8, 8, 310, 88], fill=(250, 250, 245))
    draw.text((18, 28), text, font=ImageFont.load_default(30), fill=(20, 20, 20))
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, size=(160, 128, 3), dtype=np.uint8)
    image.paste(Image.fromarray(photo), (96, 128))
    return image


def _paint(image: Image.Image, box: list[float], colour) -> Image.Image:
    out = image.copy()
    w, h = out.size
    ImageDraw.Draw(out).rectangle([box[0] * w, box[1] * h, box[2] * w - 1, box[3] * h - 1], fill=colour)
    return out


def test_text_contains_reads_the_region():
    image = _ad("Go green today")
    passed, reason = evaluate_check(TextContains(region=TEXT_BOX, any_of=["planet", "GREEN"]), image, image)
    assert passed, reason
    assert "green" in reason.lower()
    passed, reason = evaluate_check(TextContains(region=TEXT_BOX, any_of=["winter", "snow"]), image, image)
    assert not passed, reason


def test_text_absent():
    old, new = _ad("Fresh coffee daily"), _ad("Go green today")
    check = TextAbsent(region=TEXT_BOX, none_of=["coffee"])
    assert not evaluate_check(check, old, old)[0]
    assert evaluate_check(check, old, new)[0]


def test_hue_is_circular_and_grey_has_none():
    red = Image.new("RGB", (40, 40), (220, 20, 40))  # hue about 355 degrees
    mask = np.ones((40, 40), np.float32)
    assert region_stats(red, mask)["hue"] == pytest.approx(354.5, abs=1.5)
    half = red.copy()
    ImageDraw.Draw(half).rectangle([0, 0, 19, 39], fill=(220, 40, 20))  # hue about 5 degrees
    hue = region_stats(half, mask)["hue"]
    assert hue < 3 or hue > 357  # circular mean, not (355 + 5) / 2 = 180
    assert evaluate_check(ColorInRange(region="whole", stat="hue", min=330, max=30), half, half)[0]
    assert not evaluate_check(ColorInRange(region="whole", stat="hue", min=30, max=330), half, half)[0]
    grey = Image.new("RGB", (40, 40), (128, 128, 128))
    passed, reason = evaluate_check(ColorInRange(region="whole", stat="hue", min=0, max=360), grey, grey)
    assert not passed and "grey" in reason


def test_brightness_saturation_warmth():
    image = Image.new("RGB", (20, 20), (255, 128, 0))
    stats = region_stats(image, np.ones((20, 20), np.float32))
    assert stats["saturation"] == pytest.approx(1.0)
    assert stats["warmth"] == pytest.approx(1.0)
    assert stats["brightness"] == pytest.approx((0.299 * 255 + 0.587 * 128) / 255, abs=1e-3)
    check = ColorInRange(region="whole", stat="brightness", min=0.7, max=1.0)
    assert not evaluate_check(check, image, image)[0]


def test_changed_and_preserved():
    original = _ad()
    edited = _paint(original, [0.0, 0.0, 1.0, 0.3], (30, 140, 60))
    assert evaluate_check(Changed(region=[0.0, 0.0, 1.0, 0.3]), original, edited)[0]
    assert not evaluate_check(Changed(region=PHOTO_BOX), original, edited)[0]
    assert evaluate_check(Preserved(region=PHOTO_BOX), original, edited)[0]
    destroyed = Image.fromarray(255 - np.asarray(edited))
    passed, reason = evaluate_check(Preserved(region=PHOTO_BOX), original, destroyed)
    assert not passed and "altered" in reason


def test_new_element_is_compact_not_global():
    original = _ad()
    corner = [0.7, 0.7, 1.0, 1.0]
    badged = original.copy()
    ImageDraw.Draw(badged).ellipse([240, 240, 300, 300], fill=(20, 160, 60))
    assert evaluate_check(NewElement(region=corner), original, badged)[0]
    assert not evaluate_check(NewElement(region=corner), original, original)[0]
    recoloured = Image.fromarray(np.asarray(original)[:, :, ::-1].copy())
    assert not evaluate_check(NewElement(region=corner), original, recoloured)[0]
    striped = original.copy()
    for x in range(0, 320, 12):  # stripes run to the region's edges: a texture, not an element
        ImageDraw.Draw(striped).rectangle([x, 0, x + 5, 319], fill=(20, 160, 60))
    assert not evaluate_check(NewElement(region=corner), original, striped)[0]


def test_catalog_ids_and_unknown_regions(store):
    original = _ad()
    ref = store.put(original)
    catalog = {
        "image_id": ref["id"],
        "width": 320,
        "height": 320,
        "regions": [{"id": "r1", "box": PHOTO_BOX, "kind": "object", "label": "photo"}],
    }
    edited = _paint(original, [0.0, 0.0, 1.0, 0.3], (30, 140, 60))
    assert evaluate_check(Preserved(region="r1"), original, edited, catalog)[0]
    assert evaluate_check(Changed(region="background", min_fraction=0.2), original, edited, catalog)[0]
    passed, reason = evaluate_check(Preserved(region="r9"), original, edited, catalog)
    assert not passed and "r9" in reason


def _request(store, original, edited, **kwargs) -> JudgeRequest:
    ref = store.put(original)
    after = store.put(edited, parent=ref["id"], tool="test")
    return JudgeRequest(original=ref, before=ref, after=after, store=store, goal="make it greener", **kwargs)


def test_step_judgement_with_region(store):
    original = _ad()
    region = [0.0, 0.0, 1.0, 0.3]
    good = _paint(original, region, (30, 140, 60))
    verdict = MetricJudge().judge(_request(store, original, good, scope="step", region=region))
    assert isinstance(verdict, Verdict)
    assert verdict.instruction_adherence == 10 and verdict.preservation == 10
    assert verdict.plausibility is None
    sloppy = _paint(good, PHOTO_BOX, (0, 0, 0))
    verdict = MetricJudge().judge(_request(store, original, sloppy, scope="step", region=region))
    assert verdict.preservation < 5
    nothing = MetricJudge().judge(_request(store, original, original, scope="step", region=region))
    assert nothing.instruction_adherence == 0


def test_a_small_element_added_to_a_large_region_is_the_step_done(store):
    """An icon added to the whole lower part changes 2% of it: the changed share alone would call the step barely
    begun (adherence 1.2); the new compact element, 1.3% of the image, is what the step asked for."""
    original = _ad()
    region = [0.0, 0.3, 1.0, 1.0]
    icon = original.copy()
    ImageDraw.Draw(icon).ellipse([20, 250, 60, 290], fill=(30, 140, 60))
    verdict = MetricJudge().judge(_request(store, original, icon, scope="step", region=region))
    assert verdict.instruction_adherence == 10 and verdict.preservation == 10
    assert any(re.search(r"new element in it covers 1\.[23]% of the image", reason) for reason in verdict.reasons)
    speck = original.copy()
    ImageDraw.Draw(speck).ellipse([20, 250, 26, 256], fill=(30, 140, 60))
    verdict = MetricJudge().judge(_request(store, original, speck, scope="step", region=region))
    assert verdict.instruction_adherence < 1


def test_final_judgement_counts_only_typed_items(store):
    original = _ad()
    edited = _paint(original, [0.0, 0.3, 1.0, 0.4], (30, 140, 60))
    checklist = [
        ChecklistItem(id="c1", text="a green band", check=Changed(region=[0.0, 0.3, 1.0, 0.4])),
        ChecklistItem(id="c2", text="the photo stays", check=Preserved(region=PHOTO_BOX)),
        ChecklistItem(id="c3", text="it feels sustainable"),
        ChecklistItem(id="c4", text="the top turns blue", check=Changed(region=TEXT_BOX)),
    ]
    verdict = MetricJudge().judge(_request(store, original, edited, scope="final", checklist=checklist))
    assert [(item.id, item.passed) for item in verdict.checklist] == [
        ("c1", True),
        ("c2", True),
        ("c4", False),
    ]
    assert any("not verifiable" in reason and "c3" in reason for reason in verdict.reasons)
    assert verdict.instruction_adherence == 5 and verdict.preservation == 10
    assert "c4" in verdict.fix_instructions
    assert verdict.score == pytest.approx((0.5 + 1.0 + 2 / 3) / 3)


def test_final_judgement_uses_the_stored_catalog(store):
    original = _ad()
    ref = store.put(original)
    save_catalog(
        store,
        {
            "image_id": ref["id"],
            "width": 320,
            "height": 320,
            "regions": [{"id": "r1", "box": TEXT_BOX, "kind": "text", "label": "headline"}],
        },
    )
    edited = _ad("Go green today")
    after = store.put(edited, parent=ref["id"], tool="replace_text")
    item = ChecklistItem(id="c1", text="mentions green", check=TextContains(region="r1", any_of=["green"]))
    request = JudgeRequest(
        scope="final", goal="eco", original=ref, before=ref, after=after, store=store, checklist=[item]
    )
    verdict = MetricJudge().judge(request)
    assert verdict.checklist[0].passed, verdict.reasons


def test_missing_image_is_a_failure_not_a_score(store):
    ref = store.put(_ad())
    ghost = {"id": "0" * 24, "width": 320, "height": 320, "parent": None, "tool": None}
    request = JudgeRequest(scope="final", goal="x", original=ref, before=ref, after=ghost, store=store)
    assert isinstance(MetricJudge().judge(request), JudgeFailure)


def test_near_black_is_not_saturated_and_bright_colours_keep_hsv_saturation():
    mask = np.ones((10, 10), np.float32)
    navy = region_stats(Image.new("RGB", (10, 10), (0x1A, 0x1A, 0x2E)), mask)["saturation"]
    assert navy == pytest.approx(20 / 255 / 0.5, abs=1e-3)  # HSV would say 20 / 46 = 0.43
    assert region_stats(Image.new("RGB", (10, 10), (12, 12, 12)), mask)["saturation"] == 0.0
    # At least half as bright as white: exactly HSV saturation (the benchmark's ranges keep their meaning).
    assert region_stats(Image.new("RGB", (10, 10), (200, 100, 50)), mask)["saturation"] == pytest.approx(0.75)
    dark_and_muted = ColorInRange(region="whole", stat="saturation", min=0.0, max=0.2)
    image = Image.new("RGB", (10, 10), (0x1A, 0x1A, 0x2E))
    assert evaluate_check(dark_and_muted, image, image)[0]


def test_new_element_counts_an_icon_of_separate_parts_whole():
    original = _ad()
    corner = [0.7, 0.7, 1.0, 1.0]  # 96 x 96 pixels
    parts = original.copy()
    draw = ImageDraw.Draw(parts)
    for x0, y0 in (
        (236, 236),
        (268, 236),
        (252, 266),
    ):  # three 18 x 18 arrows, apart: 3.5% each, 10.5% in all
        draw.rectangle([x0, y0, x0 + 17, y0 + 17], fill=(20, 160, 60))
    check = NewElement(region=corner, min_fraction=0.08)
    passed, reason = evaluate_check(check, original, parts)
    assert passed and "3 shapes" in reason, reason
    one = original.copy()
    ImageDraw.Draw(one).rectangle([236, 236, 253, 253], fill=(20, 160, 60))
    assert not evaluate_check(check, original, one)[0]
