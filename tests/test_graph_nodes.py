"""Each node on hand-built states, the pure routers, plan scoring, and the graph's topology as a snapshot."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
from graph_fakes import (
    ECO_CALLS,
    ECO_PLAN,
    ScriptedChatModel,
    orchestrator_by_step,
    plan_message,
    put_ad,
    tool_call,
)
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.runtime import Runtime

from pixplan.graph import build_graph
from pixplan.graph.context import Context
from pixplan.graph.metric_judge import MetricJudge
from pixplan.graph.nodes import EditNodes
from pixplan.graph.plans import score_plan, validate_plan
from pixplan.graph.routing import (
    next_step_index,
    route_after_act,
    route_after_judge_final,
    route_after_judge_step,
    route_after_orchestrate,
    route_after_plan,
)
from pixplan.graph.schemas import Plan
from pixplan.tools import TOOLS
from pixplan.tools.regions import load_catalog

SNAPSHOT = Path(__file__).with_name("test_graph_topology.mmd")
LIMITS = Context().limits()


def runtime(store, events=None, **settings) -> Runtime:
    return Runtime(
        context=Context(store_dir=str(store.root), **settings),
        stream_writer=(events.append if events is not None else lambda _: None),
    )


def base_state(store, **extra):
    ref = put_ad(store)
    state = {
        "image": ref["id"],
        "goal": "make it eco-friendly",
        "original": ref,
        "current": ref,
        "catalog_text": "- r1 (object): main object\n- background\n- whole",
        "limits": dict(LIMITS),
        "plan": copy.deepcopy(ECO_PLAN) | {},
        "plan_version": 1,
        "plans": [],
        "step_index": 0,
        "messages": [],
        "attempts": [],
        "usage": {},
        "status": "running",
    }
    state["plan"] = Plan.model_validate(ECO_PLAN).model_dump()
    state.update(extra)
    return state


def attempt(step_index, accepted, plan_version=1):
    return {"plan_version": plan_version, "step_index": step_index, "accepted": accepted}


def rejected_attempt(tool: str, args: dict, before: str = "b") -> dict:
    """A first attempt at step s1 that the judge failed: `tool` called with `args` (no ``image_id``)."""
    return {
        **attempt(0, accepted=False),
        "step_id": "s1",
        "attempt": 1,
        "instruction": "x",
        "before": before,
        "tool": tool,
        "args": {k: v for k, v in args.items() if k != "image_id"},
        "image": None,
        "tool_errors": [],
        "verdict": {"reasons": ["no"], "fix_instructions": ""},
        "score": 0.1,
        "failure": None,
        "passed": False,
        "seconds": 0.0,
    }


def test_topology_snapshot():
    mermaid = build_graph(tools=TOOLS).get_graph().draw_mermaid()
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(mermaid)
    assert mermaid == SNAPSHOT.read_text()


def test_import_is_light():
    code = (
        "import sys; from pixplan.graph import build_graph, edit; build_graph;"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'openai', 'anthropic') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_routers_are_pure_decisions():
    state = {
        "limits": dict(LIMITS, max_retries_per_step=1, max_replans=1, replan_failed_step=True),
        "plan_version": 1,
        "plan": ECO_PLAN,
    }
    assert next_step_index({**state, "attempts": []}) == 0
    assert route_after_judge_step({**state, "attempts": [attempt(0, True)]}) == "next"
    assert route_after_judge_step({**state, "attempts": [attempt(0, True), attempt(1, True)]}) == "done"
    assert route_after_judge_step({**state, "attempts": [attempt(0, False)]}) == "retry"
    assert route_after_judge_step({**state, "attempts": [attempt(0, False)] * 2}) == "replan"
    # replan_failed_step off: the failed step is left, the rest of the plan runs, the final judgement replans.
    later = {**state, "limits": dict(state["limits"], replan_failed_step=False)}
    assert route_after_judge_step({**later, "attempts": [attempt(0, False)] * 2}) == "next"
    assert next_step_index({**later, "attempts": [attempt(0, False)] * 2}) == 1
    assert route_after_judge_step({**later, "attempts": [attempt(0, True), *[attempt(1, False)] * 2]}) == "done"
    assert route_after_judge_final({**later, "status": "finished", "final_verdict": {}}) == "replan"
    # Out of replans: the step is given up and the edit moves on; after the last step, the final judgement.
    spent = {**state, "plan_version": 2}
    two_failed = [attempt(0, False, 2)] * 2
    assert route_after_judge_step({**spent, "attempts": two_failed}) == "next"
    assert next_step_index({**spent, "attempts": two_failed}) == 1
    last_failed = [attempt(0, True, 2), *[attempt(1, False, 2)] * 2]
    assert route_after_judge_step({**spent, "attempts": last_failed}) == "done"
    assert route_after_judge_final({**state, "status": "finished", "final_verdict": {}}) == "replan"
    assert route_after_judge_final({**spent, "status": "finished", "final_verdict": {}}) == "end"
    assert route_after_judge_final({**state, "status": "passed", "final_verdict": {}}) == "end"
    assert route_after_plan({**state, "plans": [{"plan": ECO_PLAN}]}) == "orchestrate"
    approve = {**state, "limits": dict(LIMITS, approve_plan=True), "plans": [{"plan": ECO_PLAN}]}
    assert route_after_plan(approve) == "review_plan"
    assert route_after_plan({**state, "plan": None, "plans": [{"plan": None}]}) == "end"
    assert route_after_orchestrate({"messages": [tool_call("blur", region="r1")]}) == "act"
    assert route_after_orchestrate({"messages": [AIMessage(content="no")]}) == "judge_step"
    error = ToolMessage(content="bad", tool_call_id="1", status="error")
    assert route_after_act({**state, "messages": [error]}) == "orchestrate"
    assert route_after_act({**state, "messages": [error] * LIMITS["max_tool_errors"]}) == "judge_step"
    assert (
        route_after_act({**state, "messages": [ToolMessage(content="ok", tool_call_id="1")]}) == "judge_step"
    )


def test_plan_scoring_prefers_covering_atomic_plans():
    good = Plan.model_validate(ECO_PLAN)
    assert score_plan(good)[0] == 1.0
    uncovered = copy.deepcopy(ECO_PLAN)
    uncovered["steps"] = uncovered["steps"][:1]
    compound = copy.deepcopy(ECO_PLAN)
    compound["steps"][0]["instruction"] = "Make the background green; then warm everything."
    redundant = copy.deepcopy(ECO_PLAN)
    redundant["steps"].append({"id": "s3", "instruction": "Sharpen the logo.", "serves": []})
    scores = [score_plan(Plan.model_validate(p)) for p in (uncovered, compound, redundant)]
    assert scores[0][1]["coverage"] == pytest.approx(2 / 3, abs=1e-3)
    assert scores[1][1]["atomic"] == 0.5
    assert scores[2][1]["non_redundant"] == pytest.approx(2 / 3, abs=1e-3)
    assert all(score < 1.0 for score, _ in scores)


def test_validate_plan_names_what_is_wrong(store):
    ref = put_ad(store)
    catalog = load_catalog(store, ref["id"])
    plan = copy.deepcopy(ECO_PLAN)
    plan["steps"][1]["id"] = "s1"
    plan["steps"][0]["serves"] = ["c1", "c8"]
    plan["checklist"][1]["check"]["region"] = "r5"
    errors = validate_plan(Plan.model_validate(plan), catalog, max_steps=1)
    text = "\n".join(errors)
    assert "repeated: s1" in text and "c8" in text and "'r5'" in text and "at most 1 steps" in text
    assert validate_plan(Plan.model_validate(ECO_PLAN), catalog, max_steps=6) == []


def test_perceive_imports_the_file_and_reads_its_catalog(store, tmp_path):
    from graph_fakes import make_ad

    path = tmp_path / "ad.png"
    make_ad(64).save(path)
    events = []
    update = EditNodes(tools=TOOLS).perceive({"image": str(path), "goal": "x"}, runtime(store, events))
    assert update["original"]["id"] in store and update["current"] == update["original"]
    assert "whole" in update["catalog_text"] and load_catalog(store, update["original"]["id"]) is not None
    assert update["limits"]["max_replans"] == Context().max_replans
    assert events[0]["event"] == "perceived"


def test_plan_node_keeps_the_best_candidate(store):
    worse = copy.deepcopy(ECO_PLAN)
    worse["steps"] = worse["steps"][:1]
    planner = ScriptedChatModel(responses=[plan_message(worse), plan_message(ECO_PLAN), plan_message(worse)])
    state = base_state(store, plan=None, plan_version=0)
    update = EditNodes(planner=planner, tools=TOOLS).plan(state, runtime(store, num_plan_candidates=3))
    assert update["plan"]["steps"] == Plan.model_validate(ECO_PLAN).model_dump()["steps"]
    record = update["plans"][0]
    assert [c["score"] for c in record["candidates"]] == [
        pytest.approx(0.6 * 2 / 3 + 0.4, abs=1e-3),
        1.0,
        pytest.approx(0.6 * 2 / 3 + 0.4, abs=1e-3),
    ]
    assert update["plan_version"] == 1 and update["usage"]["planner"]["model_calls"] == 3
    # The planner saw the goal and the catalog text.
    assert (
        "make it eco-friendly" in planner.seen[0][-1].content and "r1 (object)" in planner.seen[0][-1].content
    )


def test_replan_prompt_carries_done_steps_and_failures(store):
    planner = ScriptedChatModel(responses=[plan_message(ECO_PLAN)])
    failed = {
        "plan_version": 1,
        "step_id": "s2",
        "step_index": 1,
        "attempt": 1,
        "instruction": "Warm it",
        "before": "x",
        "tool": "adjust_tone",
        "args": {"region": "whole", "warmth": 0.1},
        "image": None,
        "tool_errors": [],
        "verdict": {"reasons": ["barely changed"], "fix_instructions": "go warmer"},
        "score": 0.1,
        "failure": None,
        "passed": False,
        "accepted": False,
        "seconds": 0.0,
    }
    done = {**failed, "step_id": "s1", "instruction": "Green background", "accepted": True, "tool": "recolor"}
    state = base_state(store, attempts=[done, failed])
    update = EditNodes(planner=planner, tools=TOOLS).plan(state, runtime(store, num_plan_candidates=1))
    prompt = planner.seen[0][-1].content
    assert "s1: Green background (recolor)" in prompt and "go warmer" in prompt and "REMAINING" in prompt
    assert update["plans"][0]["version"] == 2


def test_orchestrate_sees_step_catalog_image_and_feedback(store):
    orchestrator = ScriptedChatModel(responses=[], respond=orchestrator_by_step(ECO_CALLS))
    earlier = {
        "plan_version": 1,
        "step_id": "s1",
        "step_index": 0,
        "attempt": 1,
        "instruction": "x",
        "before": "b",
        "tool": "recolor",
        "args": {"region": "r1", "color": "green"},
        "image": None,
        "tool_errors": [],
        "verdict": {
            "reasons": ["the product turned green"],
            "fix_instructions": "edit the background instead",
        },
        "score": 0.2,
        "failure": None,
        "passed": False,
        "accepted": False,
        "seconds": 0.0,
    }
    state = base_state(store, attempts=[earlier])
    events = []
    update = EditNodes(orchestrator=orchestrator, tools=TOOLS).orchestrate(state, runtime(store, events))
    prompt = update["messages"][0].content
    assert isinstance(update["messages"][0], HumanMessage)
    assert "Step s1" in prompt and state["current"]["id"] in prompt and "r1 (object)" in prompt
    assert "edit the background instead" in prompt and "the product turned green" in prompt
    call = update["messages"][-1].tool_calls[0]
    # The graph points the call at the current image, whatever id the model wrote.
    assert call["args"]["image_id"] == state["current"]["id"] and call["name"] == "replace_background"
    assert [e["event"] for e in events] == ["retried", "tool_chosen"]
    assert orchestrator.bound_tools == [tool.name for tool in TOOLS]
    # image_id is the graph's to fill in: no model is asked for it
    assert all("image_id" not in schema["parameters"]["properties"] for schema in orchestrator.bound_schemas)


def test_orchestrate_reasks_a_model_that_calls_no_tool(store):
    orchestrator = ScriptedChatModel(
        responses=[AIMessage(content="I would make it green."), tool_call("blur", region="r1")]
    )
    update = EditNodes(orchestrator=orchestrator, tools=TOOLS).orchestrate(base_state(store), runtime(store))
    kinds = [type(m).__name__ for m in update["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "HumanMessage", "AIMessage"]
    assert update["messages"][-1].tool_calls[0]["name"] == "blur"


def test_act_runs_the_tool_in_the_runs_store(store):
    state = base_state(store)
    call = tool_call("blur", image_id=state["current"]["id"], region="r1")
    from langgraph.graph import StateGraph

    # `act` needs the graph's config (for the runtime); run it as a one-node graph.
    from pixplan.graph.state import EditState

    builder = StateGraph(EditState, context_schema=Context)
    builder.add_node("act", EditNodes(tools=TOOLS).act)
    builder.set_entry_point("act")
    out = builder.compile().invoke({**state, "messages": [call]}, context=Context(store_dir=str(store.root)))
    message = out["messages"][-1]
    assert message.status == "success" and message.artifact["id"] in store
    assert message.artifact["parent"] == state["current"]["id"]


def test_judge_step_accepts_or_keeps_the_image_before(store, tool_config):
    from pixplan.tools import adjust_tone

    state = base_state(store)
    nodes = EditNodes(judge=MetricJudge(), tools=TOOLS)
    outcomes = {}
    for warmth in (0.05, 0.6):
        args = {"image_id": state["current"]["id"], "region": "background", "warmth": warmth}
        call = tool_call("adjust_tone", call_id=str(warmth), **args)
        result = adjust_tone.invoke(call.tool_calls[0], tool_config)
        update = nodes.judge_step({**state, "step_index": 1, "messages": [call, result]}, runtime(store))
        outcomes[warmth] = update
    weak, strong = outcomes[0.05], outcomes[0.6]
    assert not weak["attempts"][0]["accepted"] and "current" not in weak  # the step is reverted
    assert (
        strong["attempts"][0]["accepted"] and strong["current"]["id"] == strong["attempts"][0]["image"]["id"]
    )
    assert strong["attempts"][0]["args"] == {"region": "background", "warmth": 0.6}
    assert weak["messages"][0].id == "__remove_all__"


def test_judge_step_records_a_missing_tool_call_as_a_failure(store):
    state = base_state(store, messages=[HumanMessage("Step s1"), AIMessage(content="no")])
    update = EditNodes(judge=MetricJudge(), tools=TOOLS).judge_step(state, runtime(store))
    recorded = update["attempts"][0]
    assert (
        recorded["failure"]["kind"] == "no_image" and recorded["verdict"] is None and not recorded["accepted"]
    )


def test_judge_failure_is_recorded_not_scored(store, tool_config):
    from pixplan.graph.schemas import JudgeFailure
    from pixplan.tools import blur

    class RefusingJudge:
        name = "refusing"

        def judge(self, request):
            return JudgeFailure(kind="refusal", message="I cannot judge images")

    state = base_state(store)
    call = tool_call("blur", image_id=state["current"]["id"], region="r1")
    result = blur.invoke(call.tool_calls[0], tool_config)
    update = EditNodes(judge=RefusingJudge(), tools=TOOLS).judge_step(
        {**state, "messages": [call, result]}, runtime(store)
    )
    recorded = update["attempts"][0]
    assert (
        recorded["score"] is None and recorded["verdict"] is None and recorded["failure"]["kind"] == "refusal"
    )
    assert recorded["accepted"]  # kept unjudged, and the trace says so
    final = EditNodes(judge=RefusingJudge(), tools=TOOLS).judge_final(state, runtime(store))
    assert final["final_verdict"] is None and final["final_failure"]["kind"] == "refusal"
    assert final["status"] == "finished"


def test_multimodal_models_see_the_image_but_the_state_does_not(store):
    orchestrator = ScriptedChatModel(
        responses=[], respond=orchestrator_by_step(ECO_CALLS), profile={"image_inputs": True}
    )
    update = EditNodes(orchestrator=orchestrator, tools=TOOLS).orchestrate(base_state(store), runtime(store))
    sent = orchestrator.seen[0][1]
    assert [block["type"] for block in sent.content] == ["text", "image"]
    assert all(isinstance(message.content, str) for message in update["messages"])
    text_only = EditNodes(orchestrator=orchestrator, tools=TOOLS)
    text_only.orchestrate(base_state(store), runtime(store, send_images=False))
    assert isinstance(orchestrator.seen[-1][1].content, str)


def test_validate_plan_rejects_vague_plans(store):
    vague = {
        "checklist": [{"id": "c1", "text": "New"}],
        "steps": [
            {"id": "s1", "instruction": "Make this advertisement more eco-friendly!", "serves": ["c1"]}
        ],
    }
    errors = validate_plan(
        Plan.model_validate(vague), None, max_steps=6, goal="make this advertisement more eco-friendly"
    )
    assert any("not a requirement" in e for e in errors) and any("repeats the goal" in e for e in errors)


def test_a_replan_that_repeats_the_plan_is_no_plan(store):
    planner = ScriptedChatModel(responses=[plan_message(ECO_PLAN)])
    state = base_state(store, plan_version=1)
    update = EditNodes(planner=planner, tools=TOOLS).plan(state, runtime(store, num_plan_candidates=1))
    assert "plan" not in update and update["plans"][0]["plan"] is None
    assert "repeats the previous plan" in update["plans"][0]["candidates"][-1]["errors"][0]
    # With a plan still in force, the router wraps up with a final judgement instead of ending.
    routed = {**state, "plans": update["plans"], "limits": dict(LIMITS)}
    assert route_after_plan(routed) == "judge_final"


def test_later_candidates_see_the_earlier_ones(store):
    planner = ScriptedChatModel(responses=[plan_message(ECO_PLAN)])
    state = base_state(store, plan=None, plan_version=0)
    EditNodes(planner=planner, tools=TOOLS).plan(state, runtime(store, num_plan_candidates=2))
    assert "Other planners already proposed" not in planner.seen[0][-1].content
    assert "Other planners already proposed" in planner.seen[1][-1].content


def test_the_worked_example_is_a_valid_plan_on_its_own_catalog_and_the_same_for_every_goal(store):
    from pixplan.graph import prompts

    example = Plan.model_validate(prompts.EXAMPLE_PLAN)
    assert validate_plan(example, prompts.EXAMPLE_CATALOG, max_steps=6, tools=[t.name for t in TOOLS]) == []
    assert score_plan(example)[0] == 1.0  # every item served, steps atomic, nothing redundant
    text = prompts.worked_example()
    assert prompts.EXAMPLE_GOAL in text and "- r3 (object): bicycle box" in text
    planner = ScriptedChatModel(responses=[plan_message(ECO_PLAN)] * 2)
    for goal in ("make this ad feel like spring", "a completely different goal"):
        state = {**base_state(store, plan=None, plan_version=0), "goal": goal}
        EditNodes(planner=planner, tools=TOOLS).plan(state, runtime(store, num_plan_candidates=1))
        prompt = planner.seen[-1][-1].content
        assert goal in prompt and text in prompt


def test_orchestrate_refuses_to_repeat_a_rejected_call(store):
    call = ECO_CALLS["s1"]
    orchestrator = ScriptedChatModel(
        responses=[
            tool_call(call["name"], call_id="a", **call["args"]),
            tool_call("recolor", call_id="b", region="background", color="forestgreen"),
        ]
    )
    rejected = rejected_attempt(call["name"], call["args"])
    plan = copy.deepcopy(ECO_PLAN)
    plan["steps"][0]["tool"] = "replace_background"
    state = base_state(store, attempts=[rejected], plan=Plan.model_validate(plan).model_dump())
    update = EditNodes(orchestrator=orchestrator, tools=TOOLS).orchestrate(state, runtime(store))
    assert "Suggested tool: replace_background" in update["messages"][0].content
    kinds = [type(m).__name__ for m in update["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert update["messages"][2].status == "error" and "already tried" in update["messages"][2].content
    assert update["messages"][-1].tool_calls[0]["name"] == "recolor"
    assert route_after_orchestrate(update) == "act"


def test_plan_tool_hints_must_name_real_tools():
    plan = copy.deepcopy(ECO_PLAN)
    plan["steps"][0]["tool"] = "magic_wand"
    errors = validate_plan(Plan.model_validate(plan), None, max_steps=6, tools=[t.name for t in TOOLS])
    assert any("unknown tool 'magic_wand'" in e for e in errors)


def test_langgraph_json_points_at_the_graph():
    import importlib.util
    import json

    root = Path(__file__).resolve().parents[1]
    config = json.loads((root / "langgraph.json").read_text())
    path, _, name = config["graphs"]["pixplan"].partition(":")
    spec = importlib.util.spec_from_file_location("pixplan_langgraph_server", root / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    graph = getattr(module, name)
    assert set(graph.get_graph().nodes) >= {
        "perceive",
        "plan",
        "orchestrate",
        "act",
        "judge_step",
        "judge_final",
    }
    assert "planner_model" in graph.get_context_jsonschema()["properties"]


def test_routers_raise_on_a_state_no_node_leaves():
    """An unexpected state is a bug to surface, not a reason to quietly go on."""
    with pytest.raises(RuntimeError, match="act must end with the tool's result"):
        route_after_act({"messages": [AIMessage("no tool was run")], "limits": {"max_tool_errors": 3}})
    with pytest.raises(RuntimeError, match="orchestrate must end"):
        route_after_orchestrate({"messages": [HumanMessage("the task")]})
    with pytest.raises(RuntimeError, match="judge_final must set the status"):
        route_after_judge_final({"status": "running", "plan_version": 1, "limits": {"max_replans": 1}})
def test_local_orchestrator_gets_catalog_choices_and_never_repeats_a_rejected_call(store):
    """A local model decodes regions among the catalog's ids and, on a retry, excludes the rejected call."""
    from tiny_lm import tiny_local_model

    from pixplan.tools.perception import build_catalog

    state = base_state(store)
    catalog = build_catalog(store, state["original"]["id"])
    region_ids = {entry["id"] for entry in catalog["regions"]}
    nodes = EditNodes(orchestrator=tiny_local_model(), tools=TOOLS)
    first = nodes.orchestrate(state, runtime(store))["messages"][-1].tool_calls[0]
    assert first["args"]["region"] in region_ids
    assert first["args"]["image_id"] == state["current"]["id"]  # filled in by the graph
    rejected = rejected_attempt(first["name"], first["args"], before=state["current"]["id"])
    retry = nodes.orchestrate(base_state(store, attempts=[rejected]), runtime(store))["messages"]
    call = retry[-1].tool_calls[0]
    assert len(retry) == 2  # the task and one call: no refused repeat
    assert (call["name"], call["args"]["region"]) != (first["name"], first["args"]["region"])


def test_a_rejected_call_is_not_retried_under_another_name_of_its_region(store):
    """``background`` and the catalog's background entry are the same pixels: after a rejected call on one, the
    same call on the other is refused as a repeat (and excluded for a local model), other regions are not."""
    from pixplan.graph.nodes import rejected_calls
    from pixplan.tools.perception import build_catalog
    from pixplan.tools.regions import save_catalog

    state = base_state(store)
    catalog = build_catalog(store, state["original"]["id"])
    for entry in catalog["regions"]:  # numbered, as the benchmark's catalogs number their background
        entry["id"] = "r2" if entry["kind"] == "background" else entry["id"]
    save_catalog(store, catalog)
    regions = catalog["regions"]
    background_id = next(entry["id"] for entry in regions if entry["kind"] == "background")
    other_id = next(entry["id"] for entry in regions if entry["kind"] not in ("background", "whole"))
    rejected = rejected_attempt(
        "recolor", {"region": "background", "color": "forestgreen"}, before=state["current"]["id"]
    )
    excluded = {call["args"]["region"] for call in rejected_calls([rejected], regions)}
    assert excluded == {"background", background_id}
    orchestrator = ScriptedChatModel(
        responses=[
            tool_call("recolor", call_id="a", region=background_id, color="forestgreen"),
            tool_call("recolor", call_id="b", region=other_id, color="forestgreen"),
        ]
    )
    update = EditNodes(orchestrator=orchestrator, tools=TOOLS).orchestrate(
        {**state, "attempts": [rejected]}, runtime(store)
    )
    assert update["messages"][2].status == "error" and "already tried" in update["messages"][2].content
    assert update["messages"][-1].tool_calls[0]["args"]["region"] == other_id
