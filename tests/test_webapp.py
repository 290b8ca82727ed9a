"""The server's images route (graph/webapp.py): upload, download, and every way a request can be bad."""

from __future__ import annotations

import base64
import io

import pytest
from graph_fakes import make_ad
from PIL import Image
from starlette.testclient import TestClient

from pixplan.graph import webapp


@pytest.fixture
def client(store):
    return TestClient(webapp.app)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_then_download_the_same_pixels(client, store):
    ad = make_ad(64)
    jpeg = io.BytesIO()
    ad.save(jpeg, format="JPEG", quality=95)
    answer = client.post("/images", content=jpeg.getvalue(), headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 201, answer.text
    ref = answer.json()
    assert (
        ref["id"] in store
        and (ref["width"], ref["height"]) == (64, 64)
        and ref["url"] == f"/images/{ref['id']}"
    )
    got = client.get(ref["url"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert got.content == store.path(ref["id"]).read_bytes()
    assert Image.open(io.BytesIO(got.content)).tobytes() == store.get(ref["id"]).tobytes()


@pytest.mark.parametrize(
    "image_id",
    ["0" * 24, "abc", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "A" * 24, "0" * 24 + ".png", "0" * 23 + "/"],
)
def test_anything_but_a_stored_id_is_404(client, store, image_id):
    (store.root.parent / "secret.png").write_bytes(png_bytes(make_ad(8)))
    answer = client.get(f"/images/{image_id}")
    assert answer.status_code == 404 and b"PNG" not in answer.content


def test_bad_uploads_are_one_line_errors(client, store, monkeypatch):
    for body, status, words in [
        (b"", 400, "empty"),
        (b"this is not an image", 400, "not a readable image"),
        (png_bytes(make_ad(8))[:40], 400, "corrupt"),
    ]:
        answer = client.post("/images", content=body)
        assert answer.status_code == status, (body[:20], answer.text)
        message = answer.json()["error"]
        assert words in message and "\n" not in message, message
    monkeypatch.setattr(webapp, "MAX_UPLOAD_BYTES", 1000)
    big = png_bytes(Image.effect_noise((64, 64), 50).convert("RGB"))
    assert len(big) > 1000
    answer = client.post("/images", content=big)
    assert answer.status_code == 413 and "too large" in answer.json()["error"]
    assert list(store.root.glob("*.png")) == []


def test_the_served_graphs_never_read_a_file_a_client_names(store, tmp_path):
    """On the server, a client's image is a store id, base64 or a data URL: a path to a file of the server's is
    refused (else the images route would hand that file out), where the local graphs read the path."""
    from langchain_core.messages import HumanMessage

    from pixplan.graph import server
    from pixplan.graph.chat import build_chat_graph
    from pixplan.graph.context import Context
    from pixplan.graph.nodes import EditInputError

    secret = tmp_path / "server-secret.png"
    make_ad(32).save(secret)
    context = Context(store_dir=str(store.root), judge="metric")
    with pytest.raises(EditInputError, match="folders this server may read"):
        server.graph.invoke({"image": str(secret), "goal": "make it green"}, context=context)
    turn = {"messages": [HumanMessage(content=[{"type": "image", "url": str(secret)}])]}
    served = server.chat.invoke(turn, context=context)
    assert served["versions"] == [] and "could not use that image" in served["messages"][-1].text
    assert list(store.root.glob("*.png")) == []
    local = build_chat_graph().invoke(turn, context=context)  # the local graph reads the path it is given
    assert len(local["versions"]) == 1 and local["versions"][0]["image"]["id"] in store


def test_the_served_graphs_keep_their_images_in_the_default_store_only(store, tmp_path):
    """A client's run context cannot point the server's store at a folder of its choice (nor at another store
    whose ids it knows): the served graphs refuse any store but the default one, before anything is written."""
    from langchain_core.messages import HumanMessage

    from pixplan.graph import server
    from pixplan.graph.context import Context

    elsewhere = tmp_path / "client-chosen"
    image = {"image": "data:image/png;base64," + base64.b64encode(png_bytes(make_ad(32))).decode(), "goal": "g"}
    with pytest.raises(ValueError, match="store_dir cannot be set by a run on this graph"):
        server.graph.invoke(image, context=Context(store_dir=str(elsewhere), judge="metric"))
    turn = {"messages": [HumanMessage(content=[{"type": "text", "text": "make it green"}])]}
    with pytest.raises(ValueError, match="store_dir cannot be set"):
        server.chat.invoke(turn, context={"store_dir": str(elsewhere)})
    assert not elsewhere.exists()
    # the default store (here the test's $PIXPLAN_STORE) is accepted: the turn is read and answered
    answered = server.chat.invoke(turn, context=Context(store_dir=str(store.root), judge="metric"))
    assert answered["messages"][-1].type == "ai"
