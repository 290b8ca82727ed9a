"""The systems the benchmark compares: plain functions `(task, store, image) -> Outcome`.

- `oracle`: the task's ground truth (the intended tool calls), run with the real tools: the upper bound.
- `rule_based`: a fixed recipe per goal family (`pixplan.training.families`), the family picked by keywords
  in the goal; real tool calls on the catalog's regions (found by label), a new icon or badge always in the
  bottom-right corner.
- `single_step`: one tool on the whole image with the whole goal as its only guide. With an instruction-editing
  tool (`instruction_tool`, any tool with a `prompt` argument, e.g. `edit_by_instruction` with
  `PIXPLAN_EDIT_MODEL` set to an InstructPix2Pix, FLUX.1 Kontext or Qwen-Image-Edit model) the goal is its
  prompt; offline, the stand-in is one global `stylize` in the style of the family the goal's keywords name.
- `random`: a random tool, region and arguments per step (as many steps as the ground truth), seeded by task.
- `llm`: pixplan's graph (`pixplan.graph.edit`) with the configured models; offline by default.

Every system sees the same thing: the task's image in the store, with the task's region catalog (the benchmark
gives each system the ground-truth layout, so systems are compared on planning and orchestration, not on
perception).
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from langchain_core.tools import BaseTool

from pixplan.tools.calls import invoke_tool
from pixplan.tools.regions import RegionCatalog, load_catalog
from pixplan.tools.store import ImageRef, ImageStore
from pixplan.training.families import FAMILIES, Family
from pixplan.training.tasks import Task


@dataclass
class Outcome:
    """What a system produced: the final image, the tool calls it made, and what it cost."""

    image_id: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    model_calls: int = 0
    trace: dict[str, Any] | None = None


def tools_by_name(tools: list[BaseTool] | None = None) -> dict[str, BaseTool]:
    if tools is None:
        from pixplan.tools import TOOLS

        tools = TOOLS
    return {tool.name: tool for tool in tools}


def call_tool(
    store: ImageStore, image_id: str, name: str, region: Any, args: dict[str, Any], tools: dict[str, BaseTool]
) -> tuple[str, dict[str, Any]]:
    """Run one tool call on `image_id`; returns the new image id (the old one on error) and a step record."""
    record: dict[str, Any] = {"tool": name, "region": region, "args": args, "input": image_id}
    tool = tools.get(name)
    if tool is None:
        record["error"] = f"unknown tool {name!r}"
        return image_id, record
    start = time.perf_counter()
    try:
        _summary, artifact = invoke_tool(tool, store, image_id, {"region": region, **args})
    except Exception as error:  # a tool's bad-argument error is the system's failure, recorded, not fatal
        record["error"] = f"{type(error).__name__}: {error}"
        return image_id, record
    finally:
        record["seconds"] = round(time.perf_counter() - start, 3)
    record["output"] = artifact["id"]
    return artifact["id"], record


def run_calls(
    store: ImageStore, image: ImageRef, calls: list[dict[str, Any]], tools: list[BaseTool] | None = None
) -> Outcome:
    """Apply tool calls `{"tool", "region", "args"}` in order; a failing call leaves the image as it was."""
    named = tools_by_name(tools)
    current = image["id"]
    steps = []
    for call in calls:
        current, record = call_tool(store, current, call["tool"], call["region"], call.get("args", {}), named)
        steps.append(record)
    return Outcome(image_id=current, steps=steps)


# ---------------------------------------------------------------------------------------------------- systems


def oracle(task: Task, store: ImageStore, image: ImageRef, *, tools: list[BaseTool] | None = None) -> Outcome:
    """The task's intended edits, run with the real tools."""
    if not task.ground_truth:
        raise ValueError(f"task {task.id} has no ground truth for the oracle")
    return run_calls(store, image, task.ground_truth, tools)


#: Where the rule-based system puts a new icon or badge: always the bottom-right corner.
CORNER = [0.8, 0.8, 0.96, 0.96]


def family_of(goal: str) -> Family | None:
    """The first goal family (in `FAMILIES` order) whose keywords the goal contains, or None."""
    lowered = goal.lower()
    return next((family for family in FAMILIES.values() if re.search(family.keywords, lowered)), None)


def _region_by_label(catalog: RegionCatalog | None, label: str) -> str | None:
    for region in (catalog or {"regions": []})["regions"]:
        if region.get("label", "").startswith(label):
            return region["id"]
    return None


def rule_based(
    task: Task, store: ImageStore, image: ImageRef, *, tools: list[BaseTool] | None = None
) -> Outcome:
    """A fixed recipe per goal family (by keyword): background, slogan, corner element; no judge, no retry."""
    family = family_of(task.goal)
    catalog = load_catalog(store, image["id"])
    if family is None:  # no keyword: a generic "make it pop"
        return run_calls(
            store,
            image,
            [{"tool": "adjust_tone", "region": "whole", "args": {"contrast": 0.2, "saturation": 0.2}}],
            tools,
        )
    recipe = family.recipe
    tool, args = recipe.background
    calls = [{"tool": tool, "region": "whole" if recipe.whole else "background", "args": args}]
    slogan = _region_by_label(catalog, "slogan")
    if recipe.slogan and slogan:
        calls.append({"tool": "replace_text", "region": slogan, "args": {"text": recipe.slogan}})
    if recipe.corner:
        tool, args = recipe.corner
        calls.append({"tool": tool, "region": CORNER, "args": args})
    badge = _region_by_label(catalog, "badge")
    if recipe.remove_badge and badge:
        calls.append({"tool": "remove_object", "region": badge, "args": {}})
    return run_calls(store, image, calls, tools)


def single_step(
    task: Task,
    store: ImageStore,
    image: ImageRef,
    *,
    tools: list[BaseTool] | None = None,
    instruction_tool: str | None = None,
) -> Outcome:
    """One tool on the whole image, guided by the whole goal."""
    if instruction_tool is not None:
        if tools is None:
            from pixplan.tools import GENERATIVE_TOOLS, TOOLS

            tools = [*TOOLS, *GENERATIVE_TOOLS]
        return run_calls(
            store,
            image,
            [{"tool": instruction_tool, "region": "whole", "args": {"prompt": task.goal}}],
            tools,
        )
    family = family_of(task.goal)
    style = family.style if family is not None and family.style else "warm"
    return run_calls(store, image, [{"tool": "stylize", "region": "whole", "args": {"style": style}}], tools)


COLOURS = ["forestgreen", "gold", "crimson", "navy", "white", "black", "orange", "skyblue", "purple", "olive"]
WORDS = ["Hello", "Fresh", "New look", "Big deal", "Welcome", "Today"]


def _random_value(name: str, schema: dict[str, Any], rng: random.Random) -> Any:
    options = schema.get("anyOf")
    if options:
        schema = rng.choice([option for option in options if option.get("type") != "null"] or options)
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type")
    if kind == "number":
        return round(
            rng.uniform(
                schema.get("minimum", schema.get("exclusiveMinimum", -1.0)), schema.get("maximum", 1.0)
            ),
            3,
        )
    if kind == "integer":
        return rng.randint(int(schema.get("minimum", 0)), int(min(schema.get("maximum", 10), 50)))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "string":
        if "color" in name:
            return rng.choice(COLOURS)
        if name == "icon":
            return rng.choice(["leaf", "star", "heart", "sun", "snowflake", "recycle"])
        return rng.choice(WORDS)
    return None


def random_call(
    tools: dict[str, BaseTool], catalog: RegionCatalog | None, rng: random.Random
) -> dict[str, Any]:
    """A random tool with a random region and random arguments drawn from its argument schema."""
    name = rng.choice(sorted(tools))
    regions: list[Any] = ["whole", "background", *[r["id"] for r in (catalog or {"regions": []})["regions"]]]
    x0, y0 = rng.uniform(0, 0.7), rng.uniform(0, 0.7)
    regions.append(
        [
            round(x0, 3),
            round(y0, 3),
            round(x0 + rng.uniform(0.1, 0.3), 3),
            round(y0 + rng.uniform(0.1, 0.3), 3),
        ]
    )
    schema = tools[name].tool_call_schema.model_json_schema()
    args = {}
    required = set(schema.get("required", []))
    for key, spec in schema.get("properties", {}).items():
        if key in ("image_id", "region"):
            continue
        if key in required or rng.random() < 0.5:
            value = _random_value(key, spec, rng)
            if value is not None:
                args[key] = value
    return {"tool": name, "region": rng.choice(regions), "args": args}


def random_system(
    task: Task, store: ImageStore, image: ImageRef, *, tools: list[BaseTool] | None = None, seed: int = 0
) -> Outcome:
    """Random tool, region and arguments for each of K steps (K = the ground truth's length, else 3)."""
    rng = random.Random(f"{seed}:{task.id}")
    named = tools_by_name(tools)
    catalog = load_catalog(store, image["id"])
    calls = [random_call(named, catalog, rng) for _ in range(len(task.ground_truth) or 3)]
    return run_calls(store, image, calls, tools)


def llm(task: Task, store: ImageStore, image: ImageRef, **settings: Any) -> Outcome:
    """pixplan's graph with the configured models (`planner`, `orchestrator`, `judge`, any `Context` field)."""
    from pixplan.graph import edit

    # One checkpoint file per task: tasks may run in parallel threads.
    db = store.root.parent / "checkpoints" / f"{task.id}.sqlite"
    result = edit(image["id"], task.goal, store_dir=str(store.root), db=db, **settings)
    calls = sum(int(role.get("model_calls", 0)) for role in result.trace.get("usage", {}).values())
    steps = [
        {
            "tool": attempt["tool"],
            "region": attempt["args"].get("region"),
            "args": attempt["args"],
            "output": (attempt["image"] or {}).get("id"),
            "accepted": attempt["accepted"],
        }
        for attempt in result.trace.get("attempts", [])
    ]
    return Outcome(image_id=result.ref["id"], steps=steps, model_calls=calls, trace=result.trace)
