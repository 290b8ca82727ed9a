"""What each model is asked, and among what: the planner's and the orchestrator's messages, the tool schemas the
orchestrator sees, and the choices a local model decodes among. One place for the nodes and for training, so
what is trained is what is served (`training/planner_data.py`, `training/orchestrator_data.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from pixplan.graph import prompts
from pixplan.graph.schemas import Plan
from pixplan.graph.state import Attempt
from pixplan.tools.regions import RegionCatalog


def _region_ids(catalog: RegionCatalog | None) -> list[str]:
    """The catalog's region ids, ``whole`` and ``background`` last (what a region argument may name)."""
    ids = [entry["id"] for entry in (catalog or {"regions": []})["regions"]]
    return [i for i in ids if i not in ("whole", "background")] + ["whole", "background"]


def decoding_options(regions: Sequence[dict[str, Any]], instruction: str) -> dict[str, Any]:
    """What a local orchestrator decodes a step's call among (`LocalChatModel.bind_tools` arguments): the catalog's
    region ids, the step's words as hints, and what each named region is called. Training rollouts use it too."""
    named = [r for r in regions if r["kind"] not in ("whole", "background")]
    return {
        "choices": {"region": _region_ids({"regions": list(regions)})},
        "hint_text": instruction,
        "labels": {r["id"]: r["label"].replace('"', "") for r in named},
    }


def plan_choices(tool_names: Sequence[str], catalog: RegionCatalog | None) -> dict[str, Any]:
    """What a local planner decodes among: numbered ids, steps serving the plan's own checklist ids and naming
    a known tool, checks on catalog regions (``with_structured_output(Plan, **plan_choices(...))``)."""
    from pixplan.graph.local.choices import ids_at, numbered

    return {
        "choices": {
            "checklist.*.id": numbered("c"),
            "steps.*.id": numbered("s"),
            "steps.*.serves.*": ids_at("checklist"),
            "steps.*.tool": list(tool_names),
            "checklist.*.check.region": _region_ids(catalog),
        },
        "lengths": {"steps.*.serves": (1, None)},
    }


def planner_messages(
    goal: str,
    current: dict[str, Any],
    catalog_text: str,
    tools: Sequence[BaseTool],
    max_steps: int,
    history: str = "",
) -> list[BaseMessage]:
    """The planner's request for a plan of `goal` on image `current` (before any image block). Planner training
    renders its examples with it, so what is trained is served."""
    task = prompts.PLANNER_TASK.format(
        goal=goal,
        width=current["width"],
        height=current["height"],
        catalog=catalog_text,
        tools=prompts.format_tools(list(tools)),
        example=prompts.worked_example(),
        history=history,
        max_steps=max_steps,
    )
    return [SystemMessage(prompts.PLANNER_SYSTEM), HumanMessage(task)]


def tool_spec(tool: BaseTool) -> dict[str, Any]:
    """A tool's schema as the model sees it: without ``image_id``, which the graph fills in (`_one_call`)."""
    spec = convert_to_openai_tool(tool)
    parameters = spec["function"]["parameters"]
    parameters.get("properties", {}).pop("image_id", None)
    if "required" in parameters:
        parameters["required"] = [key for key in parameters["required"] if key != "image_id"]
    return spec


def step_message(
    plan: Plan, index: int, current: dict[str, Any], catalog_text: str, earlier: Sequence[Attempt] = ()
) -> HumanMessage:
    """The orchestrator's request to execute step `index` of `plan` on image `current` (after its system
    prompt, `prompts.ORCHESTRATOR_SYSTEM`). Training renders its examples with it, so what is trained is served."""
    step = plan.steps[index]
    served = [item for item in plan.checklist if item.id in step.serves]
    feedback = prompts.RETRY_FEEDBACK.format(attempts=prompts.format_attempt_feedback(list(earlier)))
    return HumanMessage(
        prompts.ORCHESTRATOR_TASK.format(
            step_id=step.id,
            instruction=step.instruction,
            serves="; ".join(f"{item.id}: {item.text}" for item in served) or "-",
            tool=f"Suggested tool: {step.tool}\n" if step.tool else "",
            image_id=current["id"],
            width=current["width"],
            height=current["height"],
            catalog=catalog_text,
            feedback=feedback if earlier else "",
        )
    )
