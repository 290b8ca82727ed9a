"""The SDK round trip: `langgraph dev` serves langgraph.json on 127.0.0.1; a `langgraph_sdk` client sends the
chat graph an image (a data URL) and a goal, streams the edit's events, sends a follow-up and an undo, and
downloads the result images' bytes from the server's images route. With langgraph.postgres.json, the dev server
keeps its checkpoints in a real PostgreSQL server.

Models come from each run's context: a tiny random local model folder (`local:<path>`) and the metric judge,
so a turn takes seconds. The server runs offline (no version check, no analytics, no tracing) in a folder of
its own, is always killed, and its log is printed when the test fails.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from graph_fakes import make_ad
from PIL import Image, ImageChops

pytest.importorskip("langgraph_cli", reason="langgraph dev needs the server extra (langgraph-cli[inmem])")
pytest.importorskip("langgraph_api", reason="langgraph dev needs the server extra (langgraph-cli[inmem])")

pytestmark = [pytest.mark.network_local, pytest.mark.enable_socket, pytest.mark.allow_hosts(["127.0.0.1"])]

REPO = Path(__file__).resolve().parent.parent
#: What keeps `langgraph dev` from reaching out: the PyPI version check, the CLI's analytics, LangSmith tracing.
OFFLINE_ENV = {
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def absolute(spec: str) -> str:
    return str(REPO / spec.removeprefix("./"))


@contextmanager
def langgraph_dev(
    folder: Path, store: Path, *, config_name: str = "langgraph.json", env: dict | None = None, timeout_s=180
) -> Iterator[str]:
    """`langgraph dev` on one of the repository's configs, run from `folder` (its `.langgraph_api` lands
    there, not in the repository); yields the base URL once /ok answers. Killed (process group) afterwards."""
    config = json.loads((REPO / config_name).read_text())
    config["dependencies"] = [str(REPO)]
    config["graphs"] = {name: absolute(spec) for name, spec in config["graphs"].items()}
    config["http"]["app"] = absolute(config["http"]["app"])
    if "checkpointer" in config:
        config["checkpointer"]["path"] = absolute(config["checkpointer"]["path"])
    (folder / "langgraph.json").write_text(json.dumps(config))
    for key in ("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LANGGRAPH_CLOUD_LICENSE_KEY"):
        assert key not in OFFLINE_ENV
    server_env = {k: v for k, v in os.environ.items() if k not in ("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY")}
    server_env.update(OFFLINE_ENV, PIXPLAN_STORE=str(store), **(env or {}))
    port = free_port()
    log_path = folder / "server.log"
    command = [
        str(Path(sys.executable).parent / "langgraph"),
        "dev",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    command += ["--no-browser", "--no-reload", "--config", str(folder / "langgraph.json")]
    with log_path.open("w") as log:
        server = subprocess.Popen(
            command, cwd=folder, env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    passed = False
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert server.poll() is None, f"langgraph dev exited with {server.returncode}"
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"langgraph dev did not answer /ok in {timeout_s} s"
            time.sleep(0.5)
        yield url
        passed = True
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=15)
        if not passed:
            print(
                f"---- langgraph dev log ({log_path}) ----\n{log_path.read_text()[-20000:]}", file=sys.stderr
            )


@pytest.fixture(scope="module")
def tiny_model_folder(tmp_path_factory) -> Path:
    from tiny_lm import tiny_causal_lm, tiny_tokenizer

    folder = tmp_path_factory.mktemp("tiny-lm")
    tiny_causal_lm().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def test_the_postgres_config_is_langgraph_json_plus_a_checkpointer():
    plain = json.loads((REPO / "langgraph.json").read_text())
    postgres = json.loads((REPO / "langgraph.postgres.json").read_text())
    assert postgres.pop("checkpointer") == {
        "backend": "custom",
        "path": "./graph/server.py:postgres_checkpointer",
    }
    assert postgres == plain


def test_langgraph_dev_keeps_checkpoints_in_postgres(tmp_path, tiny_model_folder):
    from langgraph_sdk import get_sync_client
    from pg_server import postgres_server, why_no_postgres

    if why_no_postgres():
        pytest.skip(f"no PostgreSQL server: {why_no_postgres()}")
    import psycopg

    spec = f"local:{tiny_model_folder}"
    context = {"planner_model": spec, "orchestrator_model": spec, "judge": "metric", "num_plan_candidates": 1}
    upload = io.BytesIO()
    make_ad(96).save(upload, format="PNG")
    with (
        postgres_server() as db,
        langgraph_dev(
            tmp_path, tmp_path / "store", config_name="langgraph.postgres.json", env={"PIXPLAN_DB": db}
        ) as url,
    ):
        client = get_sync_client(url=url, timeout=httpx.Timeout(120.0))
        image_id = httpx.post(f"{url}/images", content=upload.getvalue(), timeout=30).json()["id"]
        thread = client.threads.create()
        client.runs.wait(
            thread["thread_id"],
            "pixplan",
            input={"image": image_id, "goal": "make it green"},
            context=context,
        )
        values = client.threads.get_state(thread["thread_id"])["values"]
        with psycopg.connect(db) as connection:
            (rows,) = connection.execute(
                "SELECT count(*) FROM checkpoints WHERE thread_id = %s", (thread["thread_id"],)
            ).fetchone()
    assert values["status"] in ("passed", "failed") and values["current"]["id"] != image_id
    assert rows > 5, rows  # one checkpoint per super-step of the edit, in Postgres


def image_blocks(message: dict) -> list[dict]:
    content = message["content"]
    return [block for block in content if isinstance(block, dict) and block.get("type") == "image"]


def test_chat_over_the_sdk_goal_follow_up_undo_with_images_both_ways(tmp_path, tiny_model_folder):
    """Three turns on one thread of the `chat` graph: an image (data URL) and a goal, a follow-up on the
    result, an undo; the answers carry the result image, whose full bytes come from GET /images/{file_id}."""
    from langgraph_sdk import get_sync_client

    spec = f"local:{tiny_model_folder}"
    context = {"planner_model": spec, "orchestrator_model": spec, "judge": "metric", "num_plan_candidates": 1}
    upload = io.BytesIO()
    make_ad(96).save(upload, format="PNG")
    data_url = "data:image/png;base64," + base64.b64encode(upload.getvalue()).decode()
    turns = [
        [{"type": "text", "text": "make the background green"}, {"type": "image", "url": data_url}],
        [{"type": "text", "text": "make it warmer"}],
        [{"type": "text", "text": "undo that"}],
    ]
    with langgraph_dev(tmp_path, tmp_path / "store") as url:
        client = get_sync_client(url=url, timeout=httpx.Timeout(120.0))
        thread = client.threads.create()["thread_id"]
        answers, seconds, edit_events = [], [], []
        for content in turns:
            started = time.monotonic()
            for part in client.runs.stream(
                thread,
                "chat",
                input={"messages": [{"role": "user", "content": content}]},
                context=context,
                stream_mode=["custom", "updates"],
                stream_subgraphs=True,
            ):
                assert part.event != "error", part.data
                if part.event.startswith("custom|edit_turn"):
                    edit_events.append(part.data["event"])
            seconds.append(time.monotonic() - started)
            state = client.threads.get_state(thread)
            assert not state["next"], state["next"]
            answers.append(state["values"]["messages"][-1])
        versions = state["values"]["versions"]
        results = [image_blocks(answer)[0]["file_id"] for answer in answers]
        downloads = [httpx.get(f"{url}/images/{image_id}", timeout=30) for image_id in results]
    print(f"seconds per turn over the SDK: {[round(s, 2) for s in seconds]}")
    assert all(answer["type"] == "ai" and len(image_blocks(answer)) == 1 for answer in answers), answers
    assert {"planned", "step_started", "tool_chosen", "judged", "final"} <= set(edit_events), edit_events
    assert all(got.status_code == 200 and got.headers["content-type"] == "image/png" for got in downloads)
    original = decode(upload.getvalue())
    first, second, undone = (decode(got.content) for got in downloads)
    assert ImageChops.difference(first, original).getbbox() is not None, "turn 1 answered the upload"
    assert ImageChops.difference(second, first).getbbox() is not None, "the follow-up changed nothing"
    # The undo shows turn 1's result again, and the thread keeps every version.
    assert results[2] == results[0] and undone.tobytes() == first.tobytes()
    assert [v["image"]["id"] for v in versions][-2:] == [results[0], results[1]]
