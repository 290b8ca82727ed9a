"""Benchmark the edit graph: overhead per node transition, checkpoint bytes per step, and a real offline edit.

    .venv/bin/python benchmarks/bench_graph.py            # overhead and checkpoint size (fake models, no-op tool)
    .venv/bin/python benchmarks/bench_graph.py --real     # also `pixplan edit` on examples/ad.png, default models

Overhead: an edit of N steps with instant fake models, a no-op tool and an instant judge; wall time (and CPU time
of all the process's threads, which a busy machine inflates less) divided by the number of node transitions (each
node run is one transition), best of 3, with an in-memory and a SQLite checkpointer (opened as `edit()` opens it,
with durability "sync" as `edit()` runs it).
The real edit runs the CLI in a child process and reports its wall time, peak memory (max RSS) and the model
calls per role from its trace.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from PIL import Image

from pixplan.graph import build_graph
from pixplan.graph.api import sqlite_checkpointer
from pixplan.graph.context import Context
from pixplan.graph.schemas import Plan, Verdict
from pixplan.tools.regions import save_catalog
from pixplan.tools.store import ImageRef, ImageStore, store_from_config

ROOT = Path(__file__).resolve().parents[1]


class InstantModel(FakeMessagesListChatModel):
    """Answers every call at once: a plan for structured output, a no-op tool call otherwise."""

    profile: dict | None = None

    def bind_tools(self, tools, **kwargs):
        return self

    def with_structured_output(self, schema, **kwargs):
        return RunnableLambda(lambda _: schema.model_validate(json.loads(self.responses[0].content)))


@tool(response_format="content_and_artifact")
def noop(image_id: str, region: str, config: RunnableConfig = None) -> tuple[str, ImageRef]:
    """Do nothing to the image.

    Args:
        image_id: the image.
        region: where.
    """
    return "unchanged", store_from_config(config).ref(image_id)


class PassJudge:
    name = "pass"

    def judge(self, request):
        return Verdict(reasons=["ok"], instruction_adherence=10, preservation=10)


def fake_edit(
    steps: int, checkpointer, store: ImageStore, image_id: str, thread: str, durability: str = "sync"
) -> tuple[float, float, int]:
    """One edit of `steps` steps; returns wall seconds, CPU seconds (all threads) and node transitions."""
    plan = Plan.model_validate(
        {
            "checklist": [{"id": "c1", "text": "the image stays as it is"}],
            "steps": [
                {
                    "id": f"s{i + 1}",
                    "instruction": f"Leave part {i + 1} of the image as it is.",
                    "serves": ["c1"],
                }
                for i in range(steps)
            ],
        }
    )
    planner = InstantModel(responses=[AIMessage(content=plan.model_dump_json())])
    call = {"name": "noop", "args": {"image_id": image_id, "region": "whole"}, "id": "1", "type": "tool_call"}
    orchestrator = InstantModel(responses=[AIMessage(content="", tool_calls=[call])])
    graph = build_graph(
        planner=planner, orchestrator=orchestrator, judge=PassJudge(), tools=[noop], checkpointer=checkpointer
    )
    context = Context(store_dir=str(store.root), num_plan_candidates=1, max_steps=steps)
    config = {"configurable": {"thread_id": thread}, "recursion_limit": 10 * steps + 20}
    start, cpu = time.perf_counter(), time.process_time()
    updates = graph.stream(
        {"image": image_id, "goal": "bench"},
        config,
        context=context,
        stream_mode="updates",
        durability=durability,
    )
    transitions = sum(1 for _ in updates)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if transitions < 3 * steps:  # a rejected plan must not make the figures look good
        raise SystemExit(f"the benchmark edit stopped early: {transitions} transitions for {steps} steps")
    return seconds, cpu, transitions


def overhead(steps: int = 20, repeats: int = 3) -> dict:
    """Best-of-`repeats` milliseconds per node transition, in memory and with SQLite, and checkpoint sizes."""
    with tempfile.TemporaryDirectory() as tmp:
        store = ImageStore(Path(tmp) / "store")
        ref = store.put(Image.new("RGB", (64, 64), "gray"))
        save_catalog(store, {"image_id": ref["id"], "width": 64, "height": 64, "regions": []})
        results: dict = {"steps": steps}
        fake_edit(2, InMemorySaver(), store, ref["id"], "warmup")
        for name in ("memory", "sqlite"):
            walls, cpus = [], []
            for repeat in range(repeats):
                if name == "memory":
                    seconds, cpu, transitions = fake_edit(
                        steps, InMemorySaver(), store, ref["id"], f"m{repeat}"
                    )
                else:
                    db = Path(tmp) / f"cp{repeat}.sqlite"
                    with sqlite_checkpointer(db) as saver:
                        seconds, cpu, transitions = fake_edit(steps, saver, store, ref["id"], f"s{repeat}")
                    with sqlite3.connect(db) as connection:
                        rows = connection.execute(
                            "SELECT length(checkpoint) + length(metadata) FROM checkpoints"
                        )
                        checkpoint_bytes = [row[0] for row in rows]
                        writes = (
                            connection.execute("SELECT sum(length(value)) FROM writes").fetchone()[0] or 0
                        )
                    results["checkpoint_bytes_per_step"] = round((sum(checkpoint_bytes) + writes) / steps)
                    results["checkpoints"] = len(checkpoint_bytes)
                    results["largest_checkpoint_bytes"] = max(checkpoint_bytes)
                    results["db_file_bytes_per_step"] = round(db.stat().st_size / steps)
                walls.append(seconds / transitions * 1000)
                cpus.append(cpu / transitions * 1000)
            results[f"ms_per_transition_{name}"] = round(min(walls), 3)
            results[f"cpu_ms_per_transition_{name}"] = round(min(cpus), 3)
        results["transitions_per_step"] = round(transitions / steps, 2)
    return results


def real_edit(image: Path, goal: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        command = [
            sys.executable,
            "-m",
            "pixplan.training.cli",
            "edit",
            str(image),
            goal,
            "-o",
            str(out),
            "--store",
            str(Path(tmp) / "store"),
            "--quiet",
        ]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"pixplan edit failed:\n{done.stderr[-3000:]}")
        trace = json.loads(out.with_suffix(".trace.json").read_text())
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "image": str(image),
        "wall_seconds": round(seconds, 1),
        "peak_rss_mib": round(peak_mib),
        "status": trace["status"],
        "final_score": trace["final_score"],
        "steps": len(trace["plan"]["steps"]),
        "attempts": len(trace["attempts"]),
        "usage": trace["usage"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--real", action="store_true", help="also run the offline default `pixplan edit`")
    parser.add_argument("--image", type=Path, default=ROOT / "examples" / "ad.png")
    parser.add_argument("--goal", default="make this advertisement more eco-friendly")
    args = parser.parse_args()
    report = {"overhead": overhead(args.steps)}
    print(json.dumps(report, indent=1), flush=True)
    if args.real:
        report["real_edit"] = real_edit(args.image, args.goal)
        print(json.dumps(report["real_edit"], indent=1))


if __name__ == "__main__":
    main()
