"""Orchestrator training examples from a reward table, rendered exactly as the graph serves them.

For each (task, plan, step) of a table the prompt is the orchestrate node's own first attempt at the step
(`ORCHESTRATOR_SYSTEM` and `graph.model_inputs.step_message` on the task's original image and catalog text), the tools
its specs (`graph.model_inputs.tool_spec`), and a completion is a tool call written by `format_completion` with the
arguments in the tool schema's order, as the constrained decoder writes them. SFT takes the best action of each
step (rejection sampling: only rewards above `min_reward`); DPO pairs it with worse actions of the same step;
GRPO (`grpo_examples`) takes each step's candidate actions with their rewards and what the decoder chooses among
there (`graph.model_inputs.decoding_options`), so its rollouts decode as the node does.

`messages` and `tools` are JSON strings: Arrow would merge the argument dicts of different rows into one struct
(absent keys becoming nulls) and the rendered text would no longer be the served one. `render` turns a row
into the prompt text with a tokenizer's chat template (`chat_format.render_prompt`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from langchain_core.messages import SystemMessage
from langchain_core.tools import BaseTool

from pixplan.graph import prompts
from pixplan.graph.local.chat_format import format_completion, render_prompt, to_chat_messages
from pixplan.graph.model_inputs import decoding_options, step_message, tool_spec
from pixplan.graph.schemas import Plan
from pixplan.tools.perception import describe_catalog
from pixplan.tools.store import ImageStore
from pixplan.training.rewards import best_first, load_table, plans_path
from pixplan.training.systems import tools_by_name
from pixplan.training.tasks import load_tasks, prepare


def served_tools(tools: list[BaseTool] | None = None) -> list[dict[str, Any]]:
    """The tool specs the orchestrate node binds (default: the graph's default tools, `pixplan.tools.TOOLS`)."""
    return [tool_spec(tool) for tool in tools_by_name(tools).values()]


def call_of(row: dict[str, Any], specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A table row's action as a tool call, its arguments in the schema's order (the order the decoder writes)."""
    args = {"region": json.loads(row["region"]), **json.loads(row["args"])}
    order = list(specs[row["tool"]]["function"]["parameters"].get("properties", {}))
    unknown = sorted(set(args) - set(order))
    if unknown:
        raise ValueError(f"table action {row['action_id']}: {row['tool']} has no arguments {unknown}")
    return {"name": row["tool"], "args": {key: args[key] for key in order if key in args}}


def step_groups(
    table_dir: str | os.PathLike[str], split: str | None = None
) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """The table's rows with a reward and no tool error (of the tasks of `split`, or all), by (task, plan, step),
    best reward first."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in load_table(table_dir).to_list():
        if row["reward"] is not None and row["error"] is None and split in (None, row["split"]):
            groups.setdefault((row["task_id"], row["plan"], row["step_id"]), []).append(row)
    return {key: best_first(rows) for key, rows in groups.items()}


class PromptBuilder:
    """The orchestrator's first-attempt messages of each step of a table, as the graph builds them."""

    def __init__(self, table_dir: str | os.PathLike[str]):
        self.table_dir = Path(table_dir)
        self.store = ImageStore(self.table_dir / "store")
        self.tasks = {task.id: task for task in load_tasks(self.table_dir / "tasks.jsonl")}
        self._plans: dict[str, dict[str, Plan]] = {}
        self._images: dict[str, tuple[dict[str, Any], str, list[dict[str, Any]]]] = {}

    def plan(self, task_id: str, name: str) -> Plan:
        if task_id not in self._plans:
            raw = json.loads(plans_path(self.table_dir, task_id).read_text())
            self._plans[task_id] = {key: Plan.model_validate(value) for key, value in raw.items()}
        return self._plans[task_id][name]

    def _image(self, task_id: str) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
        if task_id not in self._images:
            image, catalog = prepare(self.tasks[task_id], self.store)
            text, regions = (describe_catalog(catalog), catalog["regions"]) if catalog else ("", [])
            self._images[task_id] = (image, text, regions)
        return self._images[task_id]

    def messages(self, task_id: str, plan_name: str, step_id: str) -> list[dict[str, Any]]:
        """Chat-template dicts of the system prompt and the step's request on the task's original image."""
        image, catalog_text, _ = self._image(task_id)
        plan = self.plan(task_id, plan_name)
        index = [step.id for step in plan.steps].index(step_id)
        request = step_message(plan, index, image, catalog_text)
        return to_chat_messages([SystemMessage(prompts.ORCHESTRATOR_SYSTEM), request])

    def options(self, task_id: str, plan_name: str, step_id: str) -> dict[str, Any]:
        """What the node's local model decodes the step's call among (`decoding_options`)."""
        step = next(step for step in self.plan(task_id, plan_name).steps if step.id == step_id)
        return decoding_options(self._image(task_id)[2], step.instruction)


def _example(builder: PromptBuilder, key: tuple[str, str, str], best: dict[str, Any], tools_json: str):
    task_id, plan_name, step_id = key
    return {
        "task_id": task_id,
        "plan": plan_name,
        "step_id": step_id,
        "messages": json.dumps(builder.messages(task_id, plan_name, step_id)),
        "tools": tools_json,
        "action_id": best["action_id"],
        "reward": best["reward"],
    }


def sft_examples(
    table_dir: str | os.PathLike[str],
    *,
    min_reward: float = 0.0,
    split: str | None = None,
    tools: list[BaseTool] | None = None,
):
    """One example per step whose best action earns more than `min_reward`: that action as the completion."""
    from datasets import Dataset

    groups = step_groups(table_dir, split)
    specs = served_tools(tools)
    by_name = {spec["function"]["name"]: spec for spec in specs}
    builder, tools_json = PromptBuilder(table_dir), json.dumps(specs)
    rows = []
    for key, group in groups.items():
        best = group[0]
        if best["reward"] > min_reward:
            completion = format_completion(tool_calls=[call_of(best, by_name)])
            rows.append({**_example(builder, key, best, tools_json), "completion": completion})
    if not rows:
        raise ValueError(f"no step of the table in {table_dir} has an action with reward above {min_reward}")
    return Dataset.from_list(rows)


def dpo_examples(
    table_dir: str | os.PathLike[str],
    *,
    pairs_per_step: int = 2,
    min_margin: float = 0.0,
    split: str | None = None,
    tools: list[BaseTool] | None = None,
):
    """Up to `pairs_per_step` pairs per step: its best action against worse ones (reward lower by more than
    `min_margin`), picked evenly from the worst to the nearly best, so the model sees both kinds of mistake."""
    from datasets import Dataset

    groups = step_groups(table_dir, split)
    specs = served_tools(tools)
    by_name = {spec["function"]["name"]: spec for spec in specs}
    builder, tools_json = PromptBuilder(table_dir), json.dumps(specs)
    rows = []
    for key, group in groups.items():
        best = group[0]
        worse = [row for row in group if row["reward"] < best["reward"] - min_margin][::-1]  # worst first
        if not worse:
            continue
        count = min(pairs_per_step, len(worse))
        indices = sorted({j * (len(worse) - 1) // max(1, count - 1) for j in range(count)})
        chosen = format_completion(tool_calls=[call_of(best, by_name)])
        for other in (worse[i] for i in indices):
            rows.append(
                {
                    **_example(builder, key, best, tools_json),
                    "chosen": chosen,
                    "rejected": format_completion(tool_calls=[call_of(other, by_name)]),
                    "rejected_reward": other["reward"],
                }
            )
    if not rows:
        raise ValueError(f"no step of the table in {table_dir} has two actions of different rewards")
    return Dataset.from_list(rows)


def grpo_examples(
    table_dir: str | os.PathLike[str],
    *,
    candidates: int | None = None,
    split: str | None = None,
    tools: list[BaseTool] | None = None,
):
    """One example per step whose actions' rewards differ (a step where every action scores alike teaches
    nothing): its candidate actions as completions (`candidates` JSON list, best first; at most `candidates`,
    picked evenly over the ranks, the best always in) with their `rewards`, and the decoder's `options`."""
    from datasets import Dataset

    if candidates is not None and candidates < 2:
        raise ValueError(f"candidates must be at least 2, not {candidates}")
    groups = step_groups(table_dir, split)
    specs = served_tools(tools)
    by_name = {spec["function"]["name"]: spec for spec in specs}
    builder, tools_json = PromptBuilder(table_dir), json.dumps(specs)
    rows = []
    for key, group in groups.items():
        if group[0]["reward"] == group[-1]["reward"]:
            continue
        count = len(group) if candidates is None else min(candidates, len(group))
        kept = [group[round(j * (len(group) - 1) / max(1, count - 1))] for j in range(count)]
        rows.append(
            {
                **_example(builder, key, group[0], tools_json),
                "candidates": json.dumps([format_completion(tool_calls=[call_of(r, by_name)]) for r in kept]),
                "rewards": [r["reward"] for r in kept],
                "options": json.dumps(builder.options(*key)),
            }
        )
    if not rows:
        raise ValueError(f"no step of the table in {table_dir} has two actions of different rewards")
    return Dataset.from_list(rows)


def render(tokenizer: Any, example: dict[str, Any]) -> str:
    """The prompt text of an example, as the local chat model renders the orchestrator's conversation."""
    return render_prompt(tokenizer, json.loads(example["messages"]), json.loads(example["tools"]))
