"""Pure routers: read the state, name the next node. The judge writes verdicts; these decide what follows.

Every loop is bounded by counters in the state against the run's limits (frozen into the state at the start):
bad tool calls per attempt (`max_tool_errors`), attempts per step (`max_retries_per_step`), planning rounds
(`max_replans`). When a budget runs out the edit goes on with what it has and ends with the best result so far.
"""

from __future__ import annotations

from typing import Literal

from langchain_core.messages import AIMessage, ToolMessage

from pixplan.graph.state import Attempt, EditState


def step_attempts(state: EditState, step_index: int) -> list[Attempt]:
    """The attempts at one step of the plan in force."""
    version = state.get("plan_version", 0)
    return [
        attempt
        for attempt in state.get("attempts", [])
        if attempt["plan_version"] == version and attempt["step_index"] == step_index
    ]


def step_exhausted(state: EditState, step_index: int) -> bool:
    """The step has used its first try and all its retries."""
    return len(step_attempts(state, step_index)) > state["limits"]["max_retries_per_step"]


def replans_left(state: EditState) -> bool:
    return state.get("plan_version", 0) - 1 < state["limits"]["max_replans"]


def next_step_index(state: EditState) -> int:
    """The step the orchestrator works on next: the same one after a failed attempt, else the following one."""
    attempts = [a for a in state.get("attempts", []) if a["plan_version"] == state.get("plan_version", 0)]
    if not attempts:
        return 0
    last = attempts[-1]
    if last["accepted"] or step_exhausted(state, last["step_index"]):
        return last["step_index"] + 1
    return last["step_index"]


def _steps_left(state: EditState) -> bool:
    plan = state.get("plan") or {"steps": []}
    return next_step_index(state) < len(plan["steps"])


def route_after_plan(state: EditState) -> Literal["review_plan", "orchestrate", "judge_final", "end"]:
    """A fresh plan goes to review (when asked) or to work; a failed planning round ends or wraps up."""
    if state["plans"][-1]["plan"] is None:
        return "judge_final" if state.get("plan") else "end"
    return "review_plan" if state["limits"]["approve_plan"] else "orchestrate"


def route_after_orchestrate(state: EditState) -> Literal["act", "judge_step"]:
    """A tool call goes to the tools; no tool call, or only refused repeats of rejected calls (after the
    re-asks), is a failed attempt, judged as such."""
    last = state["messages"][-1] if state.get("messages") else None
    if isinstance(last, AIMessage):
        return "act" if last.tool_calls else "judge_step"
    if isinstance(last, ToolMessage) and last.status == "error":
        return "judge_step"
    raise RuntimeError(
        f"orchestrate must end with the model's answer or a refusal, not {type(last).__name__}"
    )


def route_after_act(state: EditState) -> Literal["orchestrate", "judge_step"]:
    """A bad tool call goes back to the orchestrator to correct, while its budget lasts."""
    last = state["messages"][-1] if state.get("messages") else None
    if not isinstance(last, ToolMessage):
        raise RuntimeError(f"act must end with the tool's result, not {type(last).__name__}")
    if last.status == "error":
        errors = sum(
            1
            for message in state["messages"]
            if isinstance(message, ToolMessage) and message.status == "error"
        )
        if errors < state["limits"]["max_tool_errors"]:
            return "orchestrate"
    return "judge_step"


def route_after_judge_step(state: EditState) -> Literal["next", "retry", "replan", "done"]:
    """Accepted: the next step (or the final judgement). Failed: retry, else replan (unless the run leaves
    failed steps to the final judgement's replan: `replan_failed_step` off), else move on."""
    last = state["attempts"][-1]
    if last["accepted"]:
        return "next" if _steps_left(state) else "done"
    if not step_exhausted(state, last["step_index"]):
        return "retry"
    if state["limits"]["replan_failed_step"] and replans_left(state):
        return "replan"
    return "next" if _steps_left(state) else "done"


def route_after_judge_final(state: EditState) -> Literal["replan", "end"]:
    """The whole edit passed, the judge gave no verdict, or there is no replan left: the end. Otherwise plan
    the missing work."""
    if state["status"] not in ("passed", "finished"):
        raise RuntimeError(f"judge_final must set the status to passed or finished, not {state['status']!r}")
    if state["status"] == "passed" or state.get("final_verdict") is None or not replans_left(state):
        return "end"
    return "replan"
