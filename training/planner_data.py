"""Planner training data: plans scored against a task's checklist with its reward table, and SFT examples
rendered exactly as the plan node serves the planner.

Checklist-guided self-training (DESIGN.md "Learning"). A plan is scored against the *task's* checklist with
the table's best action per step (`plan_coverage`: a step's candidate actions are those of the tool it names,
on the regions its words name where they name any; its best action is the one that passes the most change
items the original fails, less the keep items it breaks; the plan covers the union of its steps' gains), so
scoring needs no new tool or judge call. Steps whose best action gains nothing are pruned (`prune`).

Two sources of target plans:
- ``samples``: the planner's own plans, sampled per task (`sample_plans`), the best-covering one kept, pruned;
- ``checklist``: the task's own checklist grouped into steps (`rewards.checklist_plan`), each step written as
  its best action in words the orchestrator's hints read (tool, region, colours, enum values, quoted text),
  steps that no action executed well pruned (`checklist_target`).

A completion is the plan as the constrained decoder writes it (every key in schema order, `format_json`); the
prompt is `graph.model_inputs.planner_messages` with `chat_format.with_format_instruction`, as `LocalChatModel`
renders a structured call.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixplan.graph.local.chat_format import format_json, to_chat_messages, with_format_instruction
from pixplan.graph.model_inputs import plan_choices, planner_messages
from pixplan.graph.plans import validate_plan
from pixplan.graph.schemas import Plan, Step
from pixplan.tools.perception import describe_catalog
from pixplan.tools.regions import RegionCatalog
from pixplan.tools.store import ImageStore
from pixplan.training.rewards import CHECKLIST_PLAN, PRESETS, TEXT_TOOLS, best_first, load_table
from pixplan.training.systems import tools_by_name
from pixplan.training.tasks import Task, load_tasks, prepare

#: The longest array and string the local planner decodes (LocalChatModel's max_array_items, max_string_chars).
MAX_ITEMS = 5
MAX_CHARS = 120
#: The plan node's limit on steps (`Context.max_steps`' default).
MAX_STEPS = 6


@dataclass
class TaskRewards:
    """One task of a reward table: its image and catalog, its actions with the task items each passes."""

    task: Task
    store: ImageStore
    image: dict[str, Any]
    catalog: RegionCatalog | None
    catalog_text: str
    actions: list[dict[str, Any]]  # one row per action (no tool error), with "passed" as a set
    baseline: set[str]
    step_best: dict[str, dict[str, Any] | None]  # the checklist plan's steps: best action row (or None)

    @property
    def change_ids(self) -> list[str]:
        return [item.id for item in self.task.checklist if item.id not in self.task.keep]

    def gain(self, action: dict[str, Any]) -> tuple[set[str], set[str]]:
        """The change items the action passes that the original fails, and the keep items it breaks."""
        new = {i for i in action["passed"] if i in self.change_ids and i not in self.baseline}
        broken = {k for k in self.task.keep if k in self.baseline and k not in action["passed"]}
        return new, broken


def load_rewards(
    table_dir: str | os.PathLike[str], split: str | None = None, limit: int | None = None
) -> list[TaskRewards]:
    """The table's tasks (of `split`, or all; the first `limit`) with their actions' per-item verdicts."""
    table_dir = Path(table_dir)
    store = ImageStore(table_dir / "store")
    tasks = {task.id: task for task in load_tasks(table_dir / "tasks.jsonl")}
    rows_by_task: dict[str, list[dict[str, Any]]] = {}
    for row in load_table(table_dir).to_list():
        if row["plan"] == CHECKLIST_PLAN and split in (None, row["split"]):
            rows_by_task.setdefault(row["task_id"], []).append(row)
    out = []
    for task_id, rows in list(rows_by_task.items())[:limit]:
        task = tasks[task_id]
        image, catalog = prepare(task, store)
        stats = json.loads((table_dir / "stats" / f"{task_id}.json").read_text())
        actions = {
            row["action_id"]: {**row, "passed": set(row["passed"])}
            for row in rows
            if row["error"] is None and row["judge_failure"] is None
        }
        best: dict[str, dict[str, Any] | None] = {}
        for row in best_first(rows):
            if row["error"] is None and row["reward"] is not None and row["step_id"] not in best:
                best[row["step_id"]] = row
        out.append(
            TaskRewards(
                task=task,
                store=store,
                image=image,
                catalog=catalog,
                catalog_text=describe_catalog(catalog) if catalog else "",
                actions=list(actions.values()),
                baseline=set(stats["baseline_passed"]),
                step_best=best,
            )
        )
    return out


# ------------------------------------------------------------------------------------------------- scoring


def _named_regions(instruction: str, catalog: RegionCatalog | None) -> set[str]:
    """The regions a step's words name: catalog ids, labels, 'background', 'whole' / 'image'."""
    words = set(re.findall(r"[a-z0-9]+", instruction.lower()))
    named = {w for w in words if re.fullmatch(r"r\d+", w)}
    for entry in (catalog or {"regions": []})["regions"]:
        label_words = set(re.findall(r"[a-z0-9]+", (entry.get("label") or "").lower()))
        if label_words and label_words <= words:
            named.add(entry["id"])
    if "background" in words:
        named.add("background")
        named |= {e["id"] for e in (catalog or {"regions": []})["regions"] if e["kind"] == "background"}
    if words & {"whole", "image", "everything"}:
        named.add("whole")
    return named


def step_candidates(step: Step, rewards: TaskRewards) -> list[dict[str, Any]]:
    """The actions that could execute a step: its tool's, on the regions its words name (where any match)."""
    actions = [a for a in rewards.actions if step.tool is None or a["tool"] == step.tool]
    named = _named_regions(step.instruction, rewards.catalog)
    there = [a for a in actions if json.loads(a["region"]) in named]
    return there or actions


def plan_coverage(plan: Plan, rewards: TaskRewards) -> dict[str, Any]:
    """How much of the task's checklist the plan's steps can meet, by the table's best action per step."""
    covered: set[str] = set()
    broken: set[str] = set()
    steps = []
    for step in plan.steps:
        best, best_key = None, (0, 0)
        for action in step_candidates(step, rewards):
            new, lost = rewards.gain(action)
            key = (len(new) - len(lost), -len(lost))
            if best is None or key > best_key:
                best, best_key = action, key
        gain = best_key[0] if best is not None else 0
        if best is not None and gain > 0:
            new, lost = rewards.gain(best)
            covered |= new
            broken |= lost
        steps.append({"id": step.id, "action": best["action_id"] if best else None, "gain": gain})
    change = rewards.change_ids
    score = (len(covered) - len(broken)) / len(change) if change else 0.0
    return {"score": round(score, 4), "covered": sorted(covered), "broken": sorted(broken), "steps": steps}


def _renumbered(checklist: list, steps: list[Step]) -> Plan:
    """A plan with ids c1.., s1.. in order (as the decoder numbers them) and serves mapped along."""
    ids = {item.id: f"c{i}" for i, item in enumerate(checklist, 1)}
    return Plan(
        checklist=[item.model_copy(update={"id": ids[item.id]}) for item in checklist],
        steps=[
            step.model_copy(update={"id": f"s{i}", "serves": [ids[s] for s in step.serves if s in ids]})
            for i, step in enumerate(steps, 1)
        ],
    )


def prune(plan: Plan, coverage: dict[str, Any]) -> Plan | None:
    """The plan without the steps whose best action gains nothing (and the items only they served)."""
    gains = {entry["id"]: entry["gain"] for entry in coverage["steps"]}
    steps = [step for step in plan.steps if gains.get(step.id, 0) > 0]
    if not steps:
        return None
    dropped = {i for step in plan.steps if step not in steps for i in step.serves}
    kept = {i for step in steps for i in step.serves}
    checklist = [item for item in plan.checklist if item.id not in dropped - kept]
    return _renumbered(checklist, steps)


# ---------------------------------------------------------------------------------------- checklist targets


def _where(region: Any, catalog: RegionCatalog | None) -> str:
    if region in ("background", "whole"):
        return "the background" if region == "background" else "the whole image"
    entry = next((e for e in (catalog or {"regions": []})["regions"] if e["id"] == region), None)
    label = (entry or {}).get("label")
    return f"the {label} ({region})" if label else str(region)


def describe_action(action: dict[str, Any], catalog: RegionCatalog | None) -> str:
    """A step instruction for an action: its tool, region and distinctive arguments (its preset's), in the
    words the orchestrator's hints read (colour names, enum values, region labels, quoted text)."""
    args = json.loads(action["args"])
    if action["tool"] in TEXT_TOOLS:
        shown: dict[str, Any] = {"text": f"'{args.get('text', '')}'"}
    else:
        shown = PRESETS.get(action["tool"], {}).get(action["preset"], {})
    details = ", ".join(f"{key} {value}" for key, value in shown.items())
    text = f"Use {action['tool']} on {_where(json.loads(action['region']), catalog)}"
    return (text + (f": {details}" if details else ""))[:MAX_CHARS]


def _servable(item):
    """A checklist item as the local planner can write it: a check on a box region (which the decoder cannot
    write: regions are catalog ids) becomes no check (the judge then leaves it to the final judgement), and a
    word list keeps its first `MAX_ITEMS` words."""
    region = item.check.region if item.check is not None else None
    if isinstance(region, list | tuple):
        return item.model_copy(update={"check": None})
    words = getattr(item.check, "any_of", None)
    if words is not None and len(words) > MAX_ITEMS:  # the decoder writes at most MAX_ITEMS of a list
        return item.model_copy(update={"check": item.check.model_copy(update={"any_of": words[:MAX_ITEMS]})})
    return item


def checklist_target(rewards: TaskRewards, plan: Plan) -> Plan | None:
    """The target plan from the task's checklist `plan` (its steps grouped by region): each step written as its
    best action, serving the items that action passes; steps no action executed well are pruned."""
    steps, served = [], []
    for step in plan.steps:
        best = rewards.step_best.get(step.id)
        if best is None or best["reward"] <= 0:
            continue
        serves = [i for i in step.serves if i in best["passed"] and i not in rewards.baseline]
        if not serves:
            continue
        steps.append(Step(id=step.id, instruction=describe_action(best, rewards.catalog), serves=serves,
                          tool=best["tool"]))
        served += serves
    if not steps:
        return None
    items = {item.id: item for item in rewards.task.checklist}
    keep = [i for i in rewards.task.keep if i in items]
    chosen = [items[i] for i in dict.fromkeys(served)][:MAX_ITEMS]
    chosen += [items[i] for i in keep][: MAX_ITEMS - len(chosen)]
    kept_ids = {item.id for item in chosen}
    steps = [s.model_copy(update={"serves": [i for i in s.serves if i in kept_ids]}) for s in steps]
    steps = [s for s in steps if s.serves][:MAX_ITEMS]
    return _renumbered([_servable(item) for item in chosen], steps)


# ------------------------------------------------------------------------------------------------ sampling


def served_messages(rewards: TaskRewards) -> list[dict[str, Any]]:
    """The planner's first request on the task's original image, as chat-template dicts with the format
    instruction a structured call adds: what `LocalChatModel` renders for the plan node."""
    messages = planner_messages(
        rewards.task.goal, rewards.image, rewards.catalog_text, list(tools_by_name().values()), MAX_STEPS
    )
    return with_format_instruction(to_chat_messages(messages), Plan.model_json_schema())


def plan_completion(plan: Plan) -> str:
    """The plan as the constrained decoder writes it: every key in schema order, then the end of the turn."""
    return format_json(plan.model_dump(mode="json")) + "<|im_end|>"


def plan_errors(plan: Plan, rewards: TaskRewards) -> list[str]:
    """What the plan node would find wrong with the plan (`validate_plan`); empty when it is fine."""
    tools = list(tools_by_name())
    return validate_plan(plan, rewards.catalog, max_steps=MAX_STEPS, goal=rewards.task.goal, tools=tools)


def sample_plans(
    rewards: TaskRewards, model: Any, count: int, temperature: float, seed: int
) -> list[Plan]:
    """`count` plans sampled from `model` on the plan node's request (with its decoding choices); the valid ones."""
    messages = planner_messages(
        rewards.task.goal, rewards.image, rewards.catalog_text, list(tools_by_name().values()), MAX_STEPS
    )
    structured = model.with_structured_output(Plan, **plan_choices(list(tools_by_name()), rewards.catalog))
    plans = []
    for index in range(count):
        try:
            plan = structured.invoke(messages, temperature=temperature, seed=seed + index)
        except ValueError:  # no valid plan within the model's retries
            continue
        if not plan_errors(plan, rewards):
            plans.append(plan)
    return plans


def example(rewards: TaskRewards, plan: Plan, source: str, coverage: dict[str, Any]) -> dict[str, Any]:
    return {
        "task_id": rewards.task.id,
        "family": rewards.task.family,
        "source": source,
        "messages": json.dumps(served_messages(rewards)),
        "completion": plan_completion(plan),
        "coverage": coverage["score"],
    }
