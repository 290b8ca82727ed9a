"""The reward table as a TRL reward function: `(prompts, completions, **columns) -> list[float]`.

GRPO's completions are orchestrator tool calls for one plan step; the dataset's `task_id` and `step_id`
columns (and `plan`, default the checklist plan) say which step. A call found in the table gets its reward
from there; an action the table has not seen is applied to the original image and judged live, as `collect`
would have done, through the same caches: it costs one tool and one judge call once, then nothing.

    reward = TableReward("runs/rewards")
    trainer = GRPOTrainer(..., reward_funcs=[reward])   # dataset columns: prompt, task_id, step_id
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pixplan.graph.models import load_judge
from pixplan.graph.schemas import Plan
from pixplan.training.rewards import (
    CHECKLIST_PLAN,
    Runner,
    action_id,
    canonical_args,
    judged_checklist,
    load_table,
    plans_path,
    step_reward,
)
from pixplan.training.tasks import load_tasks, prepare


class TableReward:
    """Rewards of tool-call completions, looked up in a reward table or evaluated live and cached.

    Args:
        table_dir: A folder written by `pixplan train collect`.
        judge: The judge of live evaluations; use the table's own (its `judge` column) for comparable rewards.
        tokenizer: Parses text completions in the served format (``<tool_call>...``, `parse_completion`);
            conversational completions (message dicts with ``tool_calls``) need none.
        invalid_reward: The reward of a completion with no valid tool call (no call, unknown tool, bad
            arguments).

    A reward is None where the judge failed on the action (TRL leaves such rewards out), never a made-up score.
    """

    def __init__(
        self,
        table_dir: str | os.PathLike[str],
        *,
        judge: str = "metric",
        tokenizer: Any = None,
        invalid_reward: float = -1.0,
    ):
        self.__name__ = "table_reward"  # TRL logs a reward function under its __name__
        self.table_dir = Path(table_dir)
        self.tokenizer = tokenizer
        self.invalid_reward = invalid_reward
        self.runner = Runner.open(self.table_dir, load_judge(judge))
        self.tasks = {task.id: task for task in load_tasks(self.table_dir / "tasks.jsonl")}
        self.rewards: dict[tuple[str, str, str, str], float | None] = {}
        self.serves: dict[tuple[str, str, str], list[str]] = {}
        for row in load_table(self.table_dir).select_columns(
            ["task_id", "plan", "step_id", "action_id", "serves", "reward"]
        ):
            self.rewards[(row["task_id"], row["plan"], row["step_id"], row["action_id"])] = row["reward"]
            self.serves[(row["task_id"], row["plan"], row["step_id"])] = row["serves"]
        self.live = 0  # actions evaluated live so far

    def __call__(
        self,
        prompts: list[Any],
        completions: list[Any],
        *,
        task_id: list[str],
        step_id: list[str],
        plan: list[str] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        plans = plan or [CHECKLIST_PLAN] * len(completions)
        return [
            self.reward(completion, task, step, name)
            for completion, task, step, name in zip(completions, task_id, step_id, plans, strict=True)
        ]

    def reward(self, completion: Any, task_id: str, step_id: str, plan: str = CHECKLIST_PLAN) -> float | None:
        """The reward of one completion for one step."""
        if (task_id, plan, step_id) not in self.serves:
            raise KeyError(f"the reward table has no step {step_id!r} of plan {plan!r} for task {task_id!r}")
        call = self.tool_call(completion)
        tool = self.runner.tools.get(call["name"]) if call else None
        if call is None or tool is None:
            return self.invalid_reward
        args = {k: v for k, v in call["arguments"].items() if k not in ("image_id", "region")}
        region = call["arguments"].get("region")
        try:
            args = canonical_args(tool, region, args)
        except ValidationError:
            return self.invalid_reward
        key = (task_id, plan, step_id, action_id(tool.name, region, args))
        if key not in self.rewards:
            self._evaluate(task_id, plan, tool.name, region, args)
        return self.rewards[key]

    def _evaluate(self, task_id: str, plan: str, tool: str, region: Any, args: dict[str, Any]) -> None:
        """Apply an unseen action to the task's original image, judge it once, reward every step of the plan."""
        task = self.tasks[task_id]
        saved = json.loads(plans_path(self.table_dir, task_id).read_text())
        plans = [(name, Plan.model_validate(value)) for name, value in saved.items()]
        checklist = judged_checklist(task, plans)
        image, _ = prepare(task, self.runner.store)
        baseline = self.runner.verdict(task.goal, image, image["id"], checklist)
        output = self.runner.apply(image["id"], tool, region, args).get("output")
        verdict = baseline if output is None else self.runner.verdict(task.goal, image, output, checklist)
        self.live += 1
        key = action_id(tool, region, args)
        for (known_task, name, step), serves in self.serves.items():
            if known_task == task_id and name == plan:
                value = None if "failure" in verdict else step_reward(verdict, serves, baseline, task.keep)
                self.rewards[(task_id, name, step, key)] = value

    def tool_call(self, completion: Any) -> dict[str, Any] | None:
        """``{"name", "arguments"}`` of the completion's first tool call, or None."""
        if isinstance(completion, str):
            if self.tokenizer is None:
                raise ValueError(
                    "text completions need a tokenizer to parse them: TableReward(tokenizer=...)"
                )
            from pixplan.graph.local.chat_format import parse_completion

            completion = [parse_completion(self.tokenizer, completion)]
        for message in completion:
            for call in message.get("tool_calls") or []:
                function = call.get("function", call)
                arguments = function.get("arguments", function.get("args", {}))
                if isinstance(arguments, str):
                    try:
                        arguments = json.loads(arguments)
                    except json.JSONDecodeError:
                        return None
                if isinstance(arguments, dict) and isinstance(function.get("name"), str):
                    return {"name": function["name"], "arguments": arguments}
                return None
        return None
