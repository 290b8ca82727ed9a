"""Images as users and remote clients give them (`import_image_input`): every accepted form gives the same store
image, every bad one a one-line `ImageError`; the edit graph's entry and `edit()` read images through it."""

from __future__ import annotations

import base64
import io

import pytest
from graph_fakes import (
    ECO_CALLS,
    ECO_PLAN,
    ScriptedChatModel,
    make_ad,
    orchestrator_by_step,
    plan_message,
    put_ad,
)
from langgraph.checkpoint.memory import InMemorySaver
from PIL import Image

from pixplan.graph import build_graph, edit
from pixplan.graph.context import Context
from pixplan.graph.metric_judge import MetricJudge
from pixplan.graph.nodes import EditInputError
from pixplan.tools.calls import error_text
from pixplan.tools.image_input import import_image_input
from pixplan.tools.store import MAX_BYTES, ImageError

pytestmark = pytest.mark.timeout(120)
GOAL = "make this advertisement more eco-friendly"


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def expect_image_error(store, value, fragment: str, **kwargs) -> str:
    with pytest.raises(ImageError) as caught:
        import_image_input(store, value, **kwargs)
    message = error_text(caught.value)
    assert "\n" not in message and len(message) < 300, message
    assert fragment.lower() in message.lower(), message
    return message


def test_every_accepted_form_gives_the_same_store_image(store, tmp_path):
    image = make_ad(64)
    data = png(image)
    path = tmp_path / "ad.png"
    path.write_bytes(data)
    expected = store.put(image)["id"]
    url = "data:image/png;base64," + b64(data)
    forms = [
        str(path),
        path,
        expected,
        f"  {expected}\n",
        b64(data),
        url,
        data,
        image,
        image.convert("RGBA"),
        {"type": "image", "base64": b64(data), "mime_type": "image/png"},
        {"type": "image", "source_type": "base64", "data": b64(data), "mime_type": "image/png"},
        {"type": "image", "source_type": "url", "url": url},
        {"type": "image", "url": url},
        {"type": "image", "file_id": expected},
        {"type": "image_url", "image_url": {"url": url}},
        {"type": "image_url", "image_url": url},
    ]
    for form in forms:
        ref = import_image_input(store, form)
        assert ref["id"] == expected, form if not isinstance(form, bytes) else "bytes"
        assert (ref["width"], ref["height"]) == (64, 64)


def test_jpeg_and_webp_data_urls_are_read(store):
    for fmt, mime in (("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        buffer = io.BytesIO()
        make_ad(64).save(buffer, format=fmt)
        ref = import_image_input(store, f"data:{mime};base64," + b64(buffer.getvalue()))
        assert ref["id"] in store and ref["width"] == 64


def test_bad_images_are_one_line_errors(store, tmp_path):
    whole = png(make_ad(64))
    truncated = whole[: len(whole) // 2]
    text = b64(b"just some text, not an image at all")
    cases = [
        ("https://example.com/ad.png", "not fetched"),
        ("http://127.0.0.1/ad.png", "offline"),
        ({"type": "image", "url": "https://example.com/ad.png"}, "not fetched"),
        ({"type": "image_url", "image_url": {"url": "https://example.com/ad.png"}}, "not fetched"),
        ("ftp://example.com/ad.png", "unsupported image url scheme"),
        ("data:text/plain;base64," + text, "not an image"),
        ("data:image/png;base64," + text, "does not hold"),
        ("data:image/png," + "abc", "must be base64"),
        ("data:image/png;base64," + b64(truncated), "corrupt"),
        ({"type": "image", "base64": text, "mime_type": "text/plain"}, "not an image"),
        ({"type": "image", "source_type": "base64", "mime_type": "image/png"}, "needs a string 'data'"),
        ({"type": "image"}, "has no image"),
        ({"type": "file", "base64": text}, "not an image content block"),
        ({"type": "image_url", "image_url": {}}, "image_url.url"),
        ("0" * 24, "unknown image id"),
        ({"type": "image", "file_id": "f" * 24}, "unknown image id"),
        ("", "empty"),
        (42, "got int"),
        (str(tmp_path / "missing.png"), "no such image file"),
        # Text too long for a file name, without base64 image data in it: "File name too long" before.
        ("x" * 300, "not an image"),
        ("some/folder/" + "y" * 300 + ".png", "no such image file"),
        (str(tmp_path / ("y" * 300 + ".png")), "not an image"),
        ("z" * 5000, "not an image"),
    ]
    for value, fragment in cases:
        expect_image_error(store, value, fragment)


def test_too_large_images_are_refused_before_decoding(store):
    huge = Image.new("1", (9000, 8000))  # 72 Mpx, a few KB as PNG: the pixel limit is in the header
    expect_image_error(store, "data:image/png;base64," + b64(png(huge)), "too large")
    expect_image_error(store, "A" * (MAX_BYTES * 4 // 3 + 8), "too large")


def test_paths_outside_the_allowed_roots_read_the_same_whether_they_exist_or_not(store, tmp_path):
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    (inside / "ok.png").write_bytes(png(make_ad(32)))
    (outside / "secret.png").write_bytes(png(make_ad(40)))
    roots = [inside.resolve()]
    assert import_image_input(store, str(inside / "ok.png"), roots=roots)["width"] == 32
    paths = [
        str(p) for p in (outside / "secret.png", outside / "missing.png", inside / ".." / "outside" / "x.png")
    ]
    refused = [
        expect_image_error(store, path, "unknown image", roots=roots).replace(path[:80], "P")
        for path in paths
    ]
    assert len(set(refused)) == 1, refused


def eco_models():
    return {
        "planner": ScriptedChatModel(responses=[plan_message(ECO_PLAN)] * 4),
        "orchestrator": ScriptedChatModel(responses=[], respond=orchestrator_by_step(ECO_CALLS)),
        "judge": MetricJudge(),
    }


def test_the_edit_graph_takes_a_data_url_and_keeps_only_the_id(store):
    ref = put_ad(store)  # the same pixels as the data URL: its catalog is found by id
    url = "data:image/png;base64," + b64(png(make_ad()))
    saver = InMemorySaver()
    graph = build_graph(**eco_models(), checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}}
    values = graph.invoke({"image": url, "goal": GOAL}, config, context=Context(store_dir=str(store.root)))
    assert values["original"]["id"] == ref["id"] and values["status"] == "passed"
    assert graph.get_state(config).values["image"] == ref["id"]
    block = {"type": "image", "base64": url.split(",", 1)[1], "mime_type": "image/png"}
    values = build_graph(**eco_models()).invoke(
        {"image": block, "goal": GOAL}, context=Context(store_dir=str(store.root))
    )
    assert values["original"]["id"] == ref["id"]


@pytest.mark.parametrize(
    ("image", "goal", "fragment"),
    [
        ("data:image/png;base64,bm90IGFuIGltYWdl", GOAL, "does not hold"),
        ("https://example.com/ad.png", GOAL, "not fetched"),
        ("q" * 400, GOAL, "not an image"),
        ("PUT_AD", "  ", "goal is missing"),
    ],
)
def test_bad_edit_input_is_a_validation_error_before_any_model(store, image, goal, fragment):
    if image == "PUT_AD":
        image = put_ad(store)["id"]
    models = eco_models()
    graph = build_graph(**models)
    with pytest.raises(EditInputError) as caught:
        graph.invoke({"image": image, "goal": goal}, context=Context(store_dir=str(store.root)))
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert models["planner"].seen == []


def test_edit_takes_a_data_url(store, tmp_path):
    put_ad(store)
    result = edit(
        "data:image/png;base64," + b64(png(make_ad())),
        GOAL,
        **eco_models(),
        store_dir=store.root,
        db=tmp_path / "c.sqlite",
    )
    assert result.status == "passed"
    with pytest.raises(ImageError, match="not fetched"):
        edit(
            "https://example.com/x.png", GOAL, **eco_models(), store_dir=store.root, db=tmp_path / "c.sqlite"
        )
