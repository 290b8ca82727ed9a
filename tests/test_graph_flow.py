"""Whole edits through the graph: scripted fake models, the real classical tools and the real metric judge."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from graph_fakes import (
    ECO_CALLS,
    ECO_PLAN,
    ScriptedChatModel,
    last_step_id,
    orchestrator_by_step,
    plan_message,
    put_ad,
    tool_call,
)
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from pixplan.graph import build_graph, edit
from pixplan.graph.context import Context
from pixplan.graph.metric_judge import MetricJudge
from pixplan.graph.schemas import Plan

GOAL = "make this advertisement more eco-friendly"


def run(store, tmp_path, planner, orchestrator, **settings):
    ref = put_ad(store)
    return ref, edit(
        ref["id"],
        GOAL,
        planner=planner,
        orchestrator=orchestrator,
        judge=MetricJudge(),
        store_dir=store.root,
        db=tmp_path / "checkpoints.sqlite",
        **settings,
    )


def planner_for(*plans) -> ScriptedChatModel:
    return ScriptedChatModel(responses=[plan_message(plan) for plan in plans])


def pixel(store, image_id, xy):
    return np.asarray(store.get(image_id))[xy[1], xy[0]].astype(int)


def test_full_edit_writes_image_trace_and_sheet(store, tmp_path):
    events = []
    _, result = run(
        store,
        tmp_path,
        planner_for(ECO_PLAN),
        ScriptedChatModel(responses=[], respond=orchestrator_by_step(ECO_CALLS)),
        output=tmp_path / "out.png",
        trace=tmp_path / "trace.json",
        sheet=tmp_path / "sheet.png",
        on_event=events.append,
    )
    assert result.status == "passed" and result.score == pytest.approx(1.0)
    # Background corner went green, warmed; the product's centre stayed red.
    corner, centre = pixel(store, result.ref["id"], (2, 2)), pixel(store, result.ref["id"], (48, 48))
    assert corner[1] > corner[0] and corner[1] > corner[2]
    assert centre[0] > 150 and centre[1] < 80
    # The result's lineage: original -> replace_background -> adjust_tone.
    assert [r["tool"] for r in store.lineage(result.ref["id"])] == [None, "replace_background", "adjust_tone"]
    trace = json.loads((tmp_path / "trace.json").read_text())
    assert [item["id"] for item in trace["plan"]["checklist"]] == ["c1", "c2", "c3"]
    steps = trace["plan"]["steps"]
    assert [s["attempts"][0]["tool"] for s in steps] == ["replace_background", "adjust_tone"]
    assert steps[0]["attempts"][0]["args"]["region"] == "background"
    assert steps[0]["attempts"][0]["verdict"]["checklist"][0]["passed"] is True
    assert trace["usage"]["planner"]["model_calls"] == 2  # two candidates, both valid
    assert trace["usage"]["orchestrator"]["model_calls"] == 2
    assert trace["usage"]["judge"]["invocations"] == 3  # two steps, one final
    assert (tmp_path / "out.png").stat().st_size > 0
    from PIL import Image

    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.width > 3 * 256  # before, two steps, after
    kinds = [event["event"] for event in events]
    assert kinds[:4] == ["perceived", "planned", "step_started", "tool_chosen"]
    assert kinds.count("judged") == 2 and kinds[-1] == "final"


def retry_orchestrator():
    """First try at s2 is too timid (the judge fails it); with the judge's feedback in view, it goes further."""
    calls = copy.deepcopy(ECO_CALLS)

    def respond(messages):
        step = last_step_id(messages)
        if step == "s2" and "Earlier attempts" not in str(messages[-1].content):
            return tool_call("adjust_tone", image_id="?", region="whole", warmth=0.3)
        return tool_call(calls[step]["name"], **calls[step]["args"])

    return ScriptedChatModel(responses=[], respond=respond)


def test_retry_reverts_the_failed_step_then_passes(store, tmp_path):
    events = []
    _, result = run(store, tmp_path, planner_for(ECO_PLAN), retry_orchestrator(), on_event=events.append)
    attempts = [a for a in result.trace["attempts"] if a["step_id"] == "s2"]
    assert [a["passed"] for a in attempts] == [False, True]
    first, second = attempts
    # The retry started from the image before the step, not from the failed attempt's image.
    assert second["before"] == first["before"] != first["image"]["id"]
    assert result.ref["id"] == second["image"]["id"] and result.ref["parent"] == first["before"]
    assert "warmth" in first["args"] and first["verdict"]["reasons"]
    retried = [e for e in events if e["event"] == "retried"]
    assert retried and retried[0]["image"] == first["before"]
    assert result.status == "passed"


def run_with_an_impossible_step(store, tmp_path, index, **settings):
    """The eco plan with step `index` impossible (the orchestrator tones a sliver, which the judge fails), and
    a replan that does that step again as s3, right; one retry a step. Returns the result and the event kinds."""
    step = ECO_PLAN["steps"][index]
    impossible = copy.deepcopy(ECO_PLAN)
    impossible["steps"][index]["instruction"] = "Make the product glow."
    fixed = copy.deepcopy(ECO_PLAN)
    fixed["steps"] = [{**step, "id": "s3"}]
    calls = {**ECO_CALLS, "s3": ECO_CALLS[step["id"]]}
    calls[step["id"]] = {"name": "adjust_tone", "args": {"region": [0.0, 0.0, 0.02, 0.02], "warmth": 0.1}}
    events = []
    _, result = run(
        store,
        tmp_path,
        ScriptedChatModel(responses=[plan_message(impossible), plan_message(fixed)]),
        ScriptedChatModel(responses=[], respond=orchestrator_by_step(calls)),
        num_plan_candidates=1,
        max_retries_per_step=1,
        on_event=events.append,
        **settings,
    )
    return result, [e["event"] for e in events]


def test_replan_after_a_step_exhausts_its_retries(store, tmp_path):
    result, kinds = run_with_an_impossible_step(store, tmp_path, 1, replan_failed_step=True)
    assert kinds.count("replanned") == 1
    trace = result.trace
    assert [p["version"] for p in trace["plans"]] == [1, 2]
    failed = [a for a in trace["attempts"] if a["step_id"] == "s2"]
    assert len(failed) == 2 and not any(a["accepted"] for a in failed)  # first try + one retry
    # After the replan, the new step starts from the image of the finished step s1, which is kept.
    s1 = next(a for a in trace["attempts"] if a["step_id"] == "s1")
    s3 = next(a for a in trace["attempts"] if a["step_id"] == "s3")
    assert s3["before"] == s1["image"]["id"] and s3["accepted"]
    assert result.status == "passed"


def test_a_failed_step_is_left_for_the_final_replan_by_default(store, tmp_path):
    """replan_failed_step off (the default): the plan's other steps run first, and the final judgement replans
    what is missing, on top of their work."""
    assert Context().replan_failed_step is False
    result, kinds = run_with_an_impossible_step(store, tmp_path, 0)
    trace = result.trace
    assert [(a["step_id"], a["accepted"]) for a in trace["attempts"]] == [
        ("s1", False), ("s1", False), ("s2", True), ("s3", True)
    ]
    # Every step of the first plan was judged, then the edit as a whole, and only then the replan.
    assert kinds.count("replanned") == 1 and kinds.index("final") < kinds.index("replanned")
    assert kinds[: kinds.index("final")].count("judged") == 3
    s2 = next(a for a in trace["attempts"] if a["step_id"] == "s2")
    s3 = next(a for a in trace["attempts"] if a["step_id"] == "s3")
    assert s3["before"] == s2["image"]["id"]  # the replan builds on the step that ran
    assert result.status == "passed"


def test_exhausted_budgets_end_cleanly_with_the_best_result(store, tmp_path):
    calls = {**ECO_CALLS, "s2": {"name": "adjust_tone", "args": {"region": "whole", "warmth": 0.05}}}
    _, result = run(
        store,
        tmp_path,
        planner_for(ECO_PLAN),
        ScriptedChatModel(responses=[], respond=orchestrator_by_step(calls)),
        num_plan_candidates=1,
        max_retries_per_step=1,
        max_replans=0,
    )
    trace = result.trace
    s1 = next(a for a in trace["attempts"] if a["step_id"] == "s1")
    # s2 never passed: it is skipped, and the result is s1's image (the best so far), judged at the end.
    assert result.ref["id"] == s1["image"]["id"]
    assert [a["accepted"] for a in trace["attempts"]] == [True, False, False]
    assert trace["final_verdict"] is not None and trace["plan"]["steps"][1]["accepted"] is False
    assert result.status in ("passed", "finished")


def test_planning_failure_ends_with_the_original(store, tmp_path):
    ref, result = run(
        store,
        tmp_path,
        ScriptedChatModel(responses=[AIMessage(content="I cannot plan that.")]),
        ScriptedChatModel(responses=[]),
        num_plan_candidates=1,
        max_plan_attempts=2,
    )
    assert result.status == "no_plan" and result.ref["id"] == ref["id"]
    assert result.trace["plans"][0]["plan"] is None
    assert len(result.trace["plans"][0]["candidates"][0]["errors"]) == 2


def test_malformed_plans_are_reasked_with_their_errors(store, tmp_path):
    bad_reference = copy.deepcopy(ECO_PLAN)
    bad_reference["steps"][0]["serves"] = ["c9"]
    bad_region = copy.deepcopy(ECO_PLAN)
    bad_region["checklist"][1]["check"]["region"] = "r7"
    planner = ScriptedChatModel(
        responses=[
            AIMessage(content='{"checklist": [}'),
            plan_message(bad_reference),
            plan_message(bad_region),
            plan_message(ECO_PLAN),
        ]
    )
    _, result = run(
        store,
        tmp_path,
        planner,
        ScriptedChatModel(responses=[], respond=orchestrator_by_step(ECO_CALLS)),
        num_plan_candidates=1,
        max_plan_attempts=4,
    )
    assert result.status == "passed"
    assert result.trace["plans"][0]["candidates"][0]["reasks"] == 3
    # Each re-ask carried the previous error to the model.
    asks = [messages[-1].content for messages in planner.seen[1:]]
    assert "c9" in asks[1] and "r7" in asks[2] and "not valid" in asks[0]


def test_bad_tool_calls_come_back_as_errors_and_are_corrected(store, tmp_path):
    good = ECO_CALLS["s1"]["args"]

    def respond(messages):
        step = last_step_id(messages)
        if step == "s2":
            return tool_call(**{"name": ECO_CALLS["s2"]["name"]}, **ECO_CALLS["s2"]["args"])
        errors = [m for m in messages if isinstance(m, ToolMessage)]
        if not errors:
            return tool_call("paint_it_green", image_id="?", region="background")
        if len(errors) == 1:
            return tool_call("replace_background", call_id="2", **{**good, "region": "r9"})
        return tool_call("replace_background", call_id="3", **good)

    orchestrator = ScriptedChatModel(responses=[], respond=respond)
    _, result = run(store, tmp_path, planner_for(ECO_PLAN), orchestrator, num_plan_candidates=1)
    s1 = result.trace["attempts"][0]
    assert s1["accepted"] and s1["tool"] == "replace_background"
    assert len(s1["tool_errors"]) == 2
    assert "paint_it_green" in s1["tool_errors"][0] and "r9" in s1["tool_errors"][1]
    # The model saw both errors before its third call.
    third = orchestrator.seen[2]
    assert [m.status for m in third if isinstance(m, ToolMessage)] == ["error", "error"]


def test_approval_interrupt_accepts_an_edited_plan(store, tmp_path):
    ref = put_ad(store)
    graph = build_graph(
        planner=planner_for(ECO_PLAN),
        orchestrator=ScriptedChatModel(responses=[], respond=orchestrator_by_step(ECO_CALLS)),
        judge=MetricJudge(),
        checkpointer=InMemorySaver(),
    )
    context = Context(store_dir=str(store.root), approve_plan=True, num_plan_candidates=1)
    config = {"configurable": {"thread_id": "t"}}
    first = graph.invoke({"image": ref["id"], "goal": GOAL}, config, context=context)
    request = first["__interrupt__"][0].value
    assert request["plan"]["steps"][0]["id"] == "s1"
    edited = copy.deepcopy(request["plan"])
    edited["steps"] = edited["steps"][:1]
    edited["checklist"] = edited["checklist"][:2]
    bad = copy.deepcopy(edited)
    bad["steps"][0]["serves"] = ["c5"]
    again = graph.invoke(Command(resume=bad), config, context=context)
    assert "c5" in again["__interrupt__"][0].value["error"]
    final = graph.invoke(Command(resume=edited), config, context=context)
    assert [a["step_id"] for a in final["attempts"]] == ["s1"]
    assert final["status"] == "passed"


def test_transient_tool_errors_are_retried_by_the_retry_policy(store, tmp_path):
    from langchain_core.tools import tool

    from pixplan.tools import replace_background

    failures = []

    @tool(response_format="content_and_artifact")
    def flaky_background(image_id: str, region: str, color: str, config: RunnableConfig = None):
        """Replace the background, after a timeout on the first call.

        Args:
            image_id: the image.
            region: where.
            color: the colour.
        """
        if not failures:
            failures.append("timeout")
            raise TimeoutError("the backend timed out")
        call = {"image_id": image_id, "region": region, "color": color}
        message = replace_background.invoke(
            {"type": "tool_call", "id": "x", "name": "x", "args": call}, config
        )
        return message.content, message.artifact

    plan = copy.deepcopy(ECO_PLAN)
    plan["steps"] = plan["steps"][:1]
    calls = {"s1": {"name": "flaky_background", "args": {"region": "background", "color": "forestgreen"}}}
    ref = put_ad(store)
    result = edit(
        ref["id"],
        GOAL,
        planner=planner_for(plan),
        orchestrator=ScriptedChatModel(responses=[], respond=orchestrator_by_step(calls)),
        judge=MetricJudge(),
        tools=[flaky_background],
        store_dir=store.root,
        db=tmp_path / "cp.sqlite",
        num_plan_candidates=1,
    )
    # The timeout was retried by the node's RetryPolicy (not a judged retry): one attempt, accepted.
    assert failures == ["timeout"]
    assert [a["attempt"] for a in result.trace["attempts"]] == [1] and result.trace["attempts"][0]["accepted"]


def test_cli_approval_prompt(monkeypatch, capsys):
    from pathlib import Path

    from pixplan.graph import cli

    def user(prompt=""):
        if prompt.startswith("accept"):
            return "e"
        # "edit the plan in PATH, save it, then press Enter": the user keeps only step s1.
        path = Path(prompt.split(" in ", 1)[1].split(",", 1)[0])
        plan = json.loads(path.read_text())
        plan["steps"], plan["checklist"] = plan["steps"][:1], plan["checklist"][:2]
        path.write_text(json.dumps(plan))
        return ""

    monkeypatch.setattr("builtins.input", user)
    edited = cli._review({"plan": Plan.model_validate(ECO_PLAN).model_dump(), "question": "?"})
    assert [step["id"] for step in edited["steps"]] == ["s1"]
    assert '"s2"' in capsys.readouterr().out  # the whole plan was shown first
    monkeypatch.setattr("builtins.input", lambda prompt="": "")
    assert cli._review({"plan": {}, "question": "?"}) is True


def test_an_llm_judge_drives_the_graph_and_its_calls_are_counted(store, tmp_path):
    from pixplan.graph.llm_judge import LLMJudge

    verdict = {
        "reasons": ["the background reads as nature", "the cup is untouched"],
        "instruction_adherence": 9,
        "plausibility": 8,
        "preservation": 9,
        "checklist": [],
        "fix_instructions": "",
    }
    judge_model = ScriptedChatModel(responses=[AIMessage(content=json.dumps(verdict))])
    ref = put_ad(store)
    result = edit(
        ref["id"],
        GOAL,
        planner=planner_for(ECO_PLAN),
        orchestrator=ScriptedChatModel(responses=[], respond=orchestrator_by_step(ECO_CALLS)),
        judge=LLMJudge(judge_model, cache_dir=False),
        store_dir=store.root,
        db=tmp_path / "cp.sqlite",
        num_plan_candidates=1,
    )
    assert result.status == "passed"
    assert [a["score"] for a in result.trace["attempts"]] == [pytest.approx(26 / 30, abs=1e-3)] * 2
    assert result.trace["usage"]["judge"]["model_calls"] == 3  # two steps and the final judgement


def test_the_graph_runs_without_a_context_and_as_a_node_of_a_parent_graph(store):
    """No context means Context(): the defaults, with the default store ($PIXPLAN_STORE, the test's store)."""
    from langgraph.graph import END, START, StateGraph

    from pixplan.graph.state import InputState, OutputState

    ref = put_ad(store)
    nodes = {
        "planner": planner_for(ECO_PLAN, ECO_PLAN),
        "orchestrator": ScriptedChatModel(responses=[], respond=orchestrator_by_step(ECO_CALLS)),
        "judge": MetricJudge(),
    }
    alone = build_graph(**nodes).invoke({"image": ref["id"], "goal": GOAL})
    assert alone["status"] == "passed" and alone["current"]["id"] in store
    parent = StateGraph(InputState, output_schema=OutputState)  # a parent graph with no context_schema
    parent.add_node("edit", build_graph(**{**nodes, "planner": planner_for(ECO_PLAN, ECO_PLAN)}))
    parent.add_edge(START, "edit")
    parent.add_edge("edit", END)
    nested = parent.compile().invoke({"image": ref["id"], "goal": GOAL})
    assert nested["status"] == "passed" and nested["current"]["id"] == alone["current"]["id"]
