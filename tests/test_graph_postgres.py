"""Postgres checkpoints: `pixplan edit --db postgresql://...` killed mid-run resumes on a real PostgreSQL server
without redoing finished steps; bad URLs and unreachable servers are one-line errors.

The server is Debian's `postgresql` (tests/pg_server.py); the planner and orchestrator are `openai:` models served
by the stub on 127.0.0.1 (as in test_graph_cli.py), so the CLI runs unchanged in a child process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from graph_fakes import ECO_CALLS, ECO_PLAN, put_ad, run_eco
from openai_stub import openai_stub
from pg_server import free_port, postgres_server, why_no_postgres

from pixplan.tools.store import ImageStore
from pixplan.training.cli import main

pytestmark = [
    pytest.mark.skipif(why_no_postgres() is not None, reason=f"no PostgreSQL server: {why_no_postgres()}"),
    pytest.mark.network_local,
    pytest.mark.enable_socket,
    pytest.mark.allow_hosts(["127.0.0.1"]),
]

GOAL = "make this advertisement more eco-friendly"
MODELS = [
    "--planner",
    "openai:stub",
    "--orchestrator",
    "openai:stub",
    "--judge",
    "metric",
    "--candidates",
    "1",
]


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


class StallingStub:
    """The OpenAI stub of test_graph_cli.py that records which step each tool call was for, and can hang on
    one step (so that a test kills the process while that step is in flight)."""

    def __init__(self, stall_at: str | None = None):
        self.stall_at = stall_at
        self.asked: list[str] = []
        self.plans = 0
        self.stalled = threading.Event()
        self.release = threading.Event()

    def __call__(self, body: dict) -> dict:
        if "response_format" in body:
            self.plans += 1
            return {"role": "assistant", "content": json.dumps(ECO_PLAN)}
        step = re.findall(r"Step (s\d+):", json.dumps(body["messages"]))[-1]
        self.asked.append(step)
        if step == self.stall_at:
            self.stall_at = None
            self.stalled.set()
            self.release.wait(timeout=120)
        call = ECO_CALLS[step]
        function = {"name": call["name"], "arguments": json.dumps(call["args"])}
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": f"call_{step}", "type": "function", "function": function}],
        }


def cli(args: list[str], base_url: str) -> subprocess.Popen:
    env = {**os.environ, "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "stub"}
    return subprocess.Popen(
        [sys.executable, "-m", "pixplan.training.cli", "edit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_killed_cli_edit_resumes_from_postgres(postgres_url, tmp_path):
    import psycopg

    store_dir = tmp_path / "store"
    image_id = put_ad(ImageStore(store_dir))["id"]
    out = tmp_path / "eco.png"
    common = ["-o", str(out), "--store", str(store_dir), "--db", postgres_url, *MODELS]
    stub = StallingStub(stall_at="s2")
    with openai_stub(stub) as server:
        first = cli([image_id, GOAL, "--thread-id", "pg1", *common], server.base_url)
        try:
            # Step 1 is done and checkpointed (durability="sync") when step 2's tool call is asked for.
            assert stub.stalled.wait(timeout=240), first.communicate(timeout=30)
            first.send_signal(signal.SIGKILL)
            printed, _ = first.communicate(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
            stub.release.set()
        assert first.returncode == -signal.SIGKILL
        assert "judged: score 1.00 -> accepted" in printed and "[2/2] s2" in printed, printed
        assert not out.exists()
        with psycopg.connect(postgres_url) as connection:
            (saved,) = connection.execute(
                "SELECT count(*) FROM checkpoints WHERE thread_id = 'pg1'"
            ).fetchone()
        assert saved > 0
        assert stub.asked == ["s1", "s2"] and stub.plans == 1

        resumed = cli(["--resume", "pg1", *common], server.base_url)
        try:
            printed, errors = resumed.communicate(timeout=240)
        finally:
            if resumed.poll() is None:
                resumed.kill()
    assert resumed.returncode == 0, printed + errors
    # The resumed process planned nothing and never asked for step 1 again: it went on with step 2.
    assert stub.plans == 1 and stub.asked == ["s1", "s2", "s2"], stub.asked
    assert "resuming run pg1" in printed and "run pg1: passed" in printed, printed
    trace = json.loads(out.with_suffix(".trace.json").read_text())
    assert [attempt["step_id"] for attempt in trace["attempts"]] == ["s1", "s2"]
    # The same image as an uninterrupted run of the same edit.
    reference = run_eco(str(tmp_path / "ref-store"), str(tmp_path / "ref.sqlite"), "ref")
    assert trace["result"]["id"] == reference.ref["id"] and out.exists()


def test_bad_postgres_urls_are_one_line_errors(postgres_url, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "stub")  # the model specs are checked first; nothing is called
    store_dir = tmp_path / "store"
    image_id = put_ad(ImageStore(store_dir))["id"]
    base = ["edit", image_id, GOAL, "-o", str(tmp_path / "x.png"), "--store", str(store_dir), *MODELS]
    closed_port = postgres_url.rsplit(":", 1)[0].replace("postgres@", "pixplan:secret@") + ":1/postgres"
    for url, expected in [
        ("postgresql://127.0.0.1/db?bogus=1", "is not a valid PostgreSQL URL"),
        (closed_port, "cannot connect"),
    ]:
        assert main([*base, "--db", url]) == 2
        error = capsys.readouterr().err
        assert expected in error and len(error.strip().splitlines()) == 1, error
        assert "secret" not in error
    # A resume on a server that has no such thread says so, and nothing runs.
    assert (
        main(
            [
                "edit",
                "--resume",
                "nothere",
                "-o",
                str(tmp_path / "y.png"),
                "--store",
                str(store_dir),
                "--db",
                postgres_url,
            ]
        )
        == 2
    )
    assert "no run with thread id 'nothere'" in capsys.readouterr().err


def test_pixplan_ui_opens_its_checkpoints_on_postgres(postgres_url, tmp_path, capsys):
    """`pixplan ui --db postgresql://...` serves with its checkpoints on the server (the tables are set up); a bad
    URL stops it before anything starts."""
    pytest.importorskip("gradio", reason="pixplan ui needs the ui extra")
    import httpx
    import psycopg

    store = ["--store", str(tmp_path / "store"), "--judge", "metric"]
    assert main(["ui", "--db", "postgresql://127.0.0.1/db?bogus=1", *store]) == 2
    assert "is not a valid PostgreSQL URL" in capsys.readouterr().err
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("CREATE DATABASE ui")
    url = postgres_url.rsplit("/", 1)[0] + "/ui"
    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "pixplan.training.cli", "ui", "--port", str(port), "--db", url, *store],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        line = ui.stdout.readline()  # printed once the checkpointer is open, just before the app serves
        assert line.startswith(f"pixplan ui on http://127.0.0.1:{port}") and url in line, (
            line + ui.stdout.read()
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.HTTPError:
                assert ui.poll() is None and time.monotonic() < deadline, ui.stdout.read()
                time.sleep(0.5)
        assert page.status_code == 200
    finally:
        os.killpg(ui.pid, signal.SIGKILL)
        ui.wait(timeout=30)
    with psycopg.connect(url) as connection:
        tables = {row[0] for row in connection.execute("SELECT tablename FROM pg_tables").fetchall()}
    assert {"checkpoints", "checkpoint_blobs", "checkpoint_writes"} <= tables


def test_the_async_checkpointer_for_the_server(postgres_url):
    """What langgraph.postgres.json opens: set up on a live server, a one-line error on a closed port."""
    import asyncio

    from pixplan.graph.api import EditError, async_postgres_checkpointer

    async def newest(url: str):
        async with async_postgres_checkpointer(url) as saver:
            return type(saver).__name__, await saver.aget_tuple({"configurable": {"thread_id": "none"}})

    assert asyncio.run(newest(postgres_url)) == ("AsyncPostgresSaver", None)
    closed = postgres_url.rsplit(":", 1)[0] + ":1/postgres"
    with pytest.raises(EditError, match="cannot connect") as caught:
        asyncio.run(newest(closed))
    assert "\n" not in str(caught.value)
