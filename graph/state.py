"""The edit graph's state: what a caller gives, what it gets back, and everything in between.

Images travel by reference (`ImageRef` dicts into the run's `ImageStore`): no pixels ever enter the state, the
orchestrator's messages or the checkpoints. Keys that accumulate have explicit reducers; counters add up.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from pixplan.tools.store import ImageRef


class Limits(TypedDict):
    """The run's budgets and thresholds, frozen into the state when the run starts so routers stay pure."""

    max_retries_per_step: int
    max_replans: int
    replan_failed_step: bool
    max_tool_errors: int
    pass_threshold: float
    final_threshold: float
    approve_plan: bool


class PlanRecord(TypedDict):
    """One planning round: the plan kept, its checklist score, and how the candidates fared."""

    version: int
    plan: dict[str, Any] | None  # Plan.model_dump(); None when no candidate was valid
    score: float
    score_parts: dict[str, float]
    candidates: list[dict[str, Any]]  # per candidate: score, parts, or the validation errors it ended with
    approved: NotRequired[bool]


class Attempt(TypedDict):
    """One try at one step: the tool call, the image it made, and the judge's verdict (or failure)."""

    plan_version: int
    step_id: str
    step_index: int
    attempt: int  # 1-based, per step
    instruction: str
    before: str  # image id it started from; a retry starts from the same one (the step is reverted)
    tool: str | None
    args: dict[str, Any]  # the tool's arguments as the model gave them, region included
    image: ImageRef | None  # what the tool made; None when no tool call succeeded
    tool_errors: list[str]  # error messages the orchestrator saw and corrected (or not)
    verdict: dict[str, Any] | None  # Verdict.model_dump()
    score: float | None  # Verdict.score; None without a verdict
    failure: dict[str, Any] | None  # JudgeFailure.model_dump(), or why no image was made
    passed: bool
    accepted: bool  # the step's result became the current image
    seconds: float


class RoleUsage(TypedDict):
    """Model use of one role (planner, orchestrator, judge)."""

    invocations: int  # requests the node made of the role (plans asked, tool calls asked, judgements)
    model_calls: int  # chat-model calls seen underneath
    input_tokens: int
    output_tokens: int
    seconds: float
    # What each model call was sent: {"sha256", "chars"} and, with trace_prompts, "messages" (see UsageMeter).
    prompts: NotRequired[list[dict[str, Any]]]


def add_usage(left: dict[str, RoleUsage] | None, right: dict[str, RoleUsage] | None) -> dict[str, RoleUsage]:
    """Reducer: sum usage per role."""
    merged: dict[str, RoleUsage] = {role: RoleUsage(**usage) for role, usage in (left or {}).items()}
    for role, usage in (right or {}).items():
        if role not in merged:
            merged[role] = RoleUsage(**usage)
            continue
        total = merged[role]
        for key in ("invocations", "model_calls", "input_tokens", "output_tokens"):
            total[key] += usage[key]
        total["seconds"] = round(total["seconds"] + usage["seconds"], 4)
        total["prompts"] = total.get("prompts", []) + usage.get("prompts", [])
    return merged


#: passed: the final judge passed; finished: the budgets ran out first (the result is the best so far);
#: no_plan: the planner never produced a valid plan (the result is the original image).
Status = Literal["running", "passed", "finished", "no_plan"]


class InputState(TypedDict):
    """What a caller gives: an image and a goal. The image is a file path, a store id, base64 or a data URL
    (``data:image/png;base64,...``), or an image content block (`pixplan.tools.image_input`); the edit keeps
    only its store id."""

    image: str | dict[str, Any]
    goal: str


class OutputState(TypedDict):
    """What a caller gets: the result image, the plan, every attempt and the final verdict."""

    original: ImageRef
    current: ImageRef  # the last accepted image: the result, or the best so far
    plan: dict[str, Any] | None  # Plan.model_dump() of the plan in force
    plans: Annotated[list[PlanRecord], operator.add]
    attempts: Annotated[list[Attempt], operator.add]
    final_verdict: dict[str, Any] | None
    final_failure: dict[str, Any] | None
    status: Status
    usage: Annotated[dict[str, RoleUsage], add_usage]


class EditState(InputState, OutputState):
    """The whole state of an edit."""

    limits: Limits
    catalog_text: str  # describe_catalog() of the original image: how a text-only model sees it
    plan_version: Annotated[int, operator.add]  # planning rounds run (the first plan is version 1)
    step_index: int  # index into plan["steps"] of the step being worked on
    messages: Annotated[list[AnyMessage], add_messages]  # the orchestrator's conversation for one attempt
