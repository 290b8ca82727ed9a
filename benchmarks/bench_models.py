"""Planner and orchestrator calls of the offline default model (SmolLM2-135M-Instruct), before and after, side by
side in one run: prompt tokens, reused (cached) prompt tokens and seconds per call.

    .venv/bin/python benchmarks/bench_models.py                 # before (the one-module decoder of BEFORE), after
    .venv/bin/python benchmarks/bench_models.py --skip-before   # after only, cache off and on
    .venv/bin/python benchmarks/bench_models.py --threads 2     # torch threads (default 1, steady on a busy machine)

The calls are the graph's own: the plan node (two candidate plans: two planner calls) and the orchestrate node
on two steps of a plan (two orchestrator calls), on examples/ad.png with its real region catalog and every library
tool. "before" is `graph/local_model.py` as of commit BEFORE (full tool schemas in the prompt, choices read out of
the prompt, one reused prefix), loaded from git; "after" is `pixplan.graph.local` with its prefix cache off
(``prefix_cache_size=0``) and on. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "dbd571d"  # the last commit with graph/local_model.py

PLAN = {
    "checklist": [
        {"id": "c1", "text": "the background is green, like nature", "check": None},
        {"id": "c2", "text": "the slogan mentions nature", "check": None},
    ],
    "steps": [
        {"id": "s1", "instruction": "Replace the background with a forest green gradient.", "serves": ["c1"]},
        {"id": "s2", "instruction": "Replace the slogan text with 'Naturally fresh'.", "serves": ["c2"]},
    ],
}


class Calls(BaseCallbackHandler):
    """Prompt tokens, cached prompt tokens and seconds of every chat-model call."""

    run_inline = True

    def __init__(self) -> None:
        self.started: dict[Any, float] = {}
        self.calls: list[dict[str, Any]] = []

    def on_chat_model_start(self, serialized, messages, *, run_id, **kwargs) -> None:
        self.started[run_id] = time.perf_counter()

    def on_llm_end(self, response, *, run_id, **kwargs) -> None:
        message = response.generations[0][0].message
        usage = message.usage_metadata or {}
        self.calls.append(
            {
                "prompt_tokens": usage.get("input_tokens"),
                "cached_tokens": (usage.get("input_token_details") or {}).get("cache_read"),
                "seconds": round(time.perf_counter() - self.started.pop(run_id), 2),
            }
        )


def before_class():
    """`LocalChatModel` of graph/local_model.py at commit BEFORE, imported from a temporary file."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:graph/local_model.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="pixplan-before-")) / "before_local_model.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("before_local_model", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.LocalChatModel


def measure(model: Any, store: Any, ref: dict, catalog_text: str) -> dict[str, Any]:
    """Two planner calls (the plan node) and two orchestrator calls (the orchestrate node on s1, then s2)."""
    from langgraph.runtime import Runtime

    from pixplan.graph.context import Context
    from pixplan.graph.nodes import EditNodes
    from pixplan.graph.schemas import Plan
    from pixplan.tools import TOOLS

    context = Context(store_dir=str(store.root), num_plan_candidates=2)
    runtime = Runtime(context=context, stream_writer=lambda _: None)
    plan = Plan.model_validate(PLAN).model_dump()
    state = {
        "image": ref["id"],
        "goal": "make this ad more eco-friendly",
        "original": ref,
        "current": ref,
        "catalog_text": catalog_text,
        "limits": context.limits(),
        "plan": plan,
        "plan_version": 1,
        "plans": [],
        "step_index": 0,
        "messages": [],
        "attempts": [],
        "usage": {},
        "status": "running",
    }
    calls = Calls()
    model.callbacks = [calls]
    nodes = EditNodes(planner=model, orchestrator=model, tools=TOOLS)
    nodes.plan({**state, "plan": None, "plan_version": 0}, runtime)
    planner = list(calls.calls)
    calls.calls.clear()
    chosen = []
    for index in (0, 1):
        done = [{"plan_version": 1, "step_index": 0, "accepted": True, "step_id": "s1"}] if index else []
        update = nodes.orchestrate({**state, "attempts": done}, runtime)
        call = update["messages"][-1].tool_calls[0]
        chosen.append(
            {"name": call["name"], "args": {k: v for k, v in call["args"].items() if k != "image_id"}}
        )
    return {
        "planner_calls": planner,
        "orchestrator_calls": list(calls.calls),
        "orchestrator_s_mean": round(statistics.mean(c["seconds"] for c in calls.calls), 2),
        "tool_calls": chosen,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--skip-before", action="store_true", help="only the new package, cache off and on")
    args = parser.parse_args()
    os.environ.setdefault("PIXPLAN_CACHE", str(Path.home() / ".cache" / "pixplan"))

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pixplan.graph.local import LocalChatModel
    from pixplan.graph.local.chat_format import prepare_tokenizer
    from pixplan.graph.models import smollm2_dir
    from pixplan.tools.perception import build_catalog, describe_catalog
    from pixplan.tools.store import ImageStore

    folder = smollm2_dir()
    weights = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(str(folder)))
    store = ImageStore(Path(tempfile.mkdtemp(prefix="pixplan-bench-")) / "store")
    ref = store.put_file(ROOT / "examples" / "ad.png")
    catalog_text = describe_catalog(build_catalog(store, ref["id"]))
    common = {"model": weights, "tokenizer": tokenizer, "model_name": "smollm2", "num_threads": args.threads}
    figures: dict[str, Any] = {"cpu_count": os.cpu_count(), "load_average_1min_at_start": os.getloadavg()[0]}
    runs = {}
    if not args.skip_before:
        runs["before"] = before_class()(**common)
    runs["after_cache_off"] = LocalChatModel(**common, prefix_cache_size=0)
    runs["after_cache_on"] = LocalChatModel(**common)
    for label, model in runs.items():
        start = time.perf_counter()
        figures[label] = measure(model, store, ref, catalog_text)
        figures[label]["wall_s"] = round(time.perf_counter() - start, 1)
        print(label, json.dumps(figures[label]), flush=True)
    if "before" in figures:
        before = figures["before"]["orchestrator_s_mean"]
        for label in ("after_cache_off", "after_cache_on"):
            figures[f"orchestrator_speedup_{label}"] = round(
                before / figures[label]["orchestrator_s_mean"], 1
            )
    figures["load_average_1min_at_end"] = os.getloadavg()[0]
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
