"""Checkpoints: a killed edit resumes without losing finished steps; checkpoints hold no pixels and stay small."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from graph_fakes import run_eco

HERE = Path(__file__).parent


def child(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.Popen(
        [sys.executable, str(HERE / "graph_fakes.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_killed_run_resumes_to_the_same_image(tmp_path):
    reference = run_eco(str(tmp_path / "ref-store"), str(tmp_path / "ref.sqlite"), "ref")
    store, db = str(tmp_path / "store"), str(tmp_path / "cp.sqlite")

    process = child(store, db, "run1", "stall")
    seen = []
    for line in process.stdout:
        event = json.loads(line)
        seen.append(event)
        if event.get("asked") == "s2":  # step 1 is done and checkpointed; step 2 is in flight
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert any(e.get("event") == "judged" and e["step"] == "s1" and e["accepted"] for e in seen)

    resumed = child(store, db, "run1", "resume")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    # The resumed process never asked for step 1 again: it went on with step 2.
    assert [e["asked"] for e in lines if "asked" in e] == ["s2"]
    assert lines[-1] == {"result": reference.ref["id"], "status": reference.status}


def test_checkpoints_hold_no_pixels_and_stay_small(tmp_path):
    db = tmp_path / "cp.sqlite"
    result = run_eco(str(tmp_path / "store"), str(db), "small")
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT checkpoint, metadata FROM checkpoints WHERE thread_id = 'small'"
        ).fetchall()
        writes = connection.execute("SELECT value FROM writes WHERE thread_id = 'small'").fetchall()
    blobs = [bytes(blob) for row in rows for blob in row if blob is not None]
    blobs += [bytes(value) for (value,) in writes if value is not None]
    for blob in blobs:
        assert b"\x89PNG" not in blob and b"base64" not in blob
    sizes = sorted(len(bytes(row[0])) for row in rows)
    steps = len(result.trace["attempts"])
    # A few kilobytes a checkpoint; the biggest (with the plan, the catalog text and all attempts) under 32 KB.
    assert sizes[-1] < 32_000, sizes[-1]
    assert sum(sizes) / max(steps, 1) < 150_000
