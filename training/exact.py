"""How good the two reward approximations are: exhaustive rollouts of small instances against the table.

An instance is a collected task's checklist plan (2-3 steps) with a handful of candidate actions per step,
taken from the reward table across its range (best, worst and evenly between). Every action sequence is
rolled out in full (each step on the previous step's image) and its final image judged against the checklist:
the *exact* reward, the fraction of judged items that pass. The *additive* reward is the sum of the steps'
table rewards (approximations 1 and 2). Reported per instance and overall:

- Spearman and Kendall correlation of additive with exact (scipy), and top-1 agreement (the sequence the
  additive reward ranks first is an exact best);
- the tool and judge calls each needs (exhaustive: a prefix tree of tool calls and one judge call per
  sequence; additive: one call each per distinct action, plus the original's judgement), their ratio, and the
  same analytically for more steps and actions;
- where it breaks: the error of the estimate (original score + additive reward) on sequences where two steps
  touch overlapping regions, against sequences whose steps touch disjoint ones.

    pixplan train exact --config training/configs/exact.yaml
"""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from pixplan.graph.models import load_judge
from pixplan.tools.regions import load_catalog, region_mask
from pixplan.training.rewards import CHECKLIST_PLAN, Runner, load_table
from pixplan.training.tasks import Task, load_tasks, prepare

#: Two regions overlap when they share more than this fraction of the smaller one's pixels.
OVERLAP_FRACTION = 0.01


def pick_actions(rows: list[dict[str, Any]], per_step: int) -> list[dict[str, Any]]:
    """`per_step` rows of one step spread over its reward range: best first, worst last, evenly between."""
    usable = [row for row in rows if row["reward"] is not None and row["error"] is None]
    usable.sort(key=lambda row: (-row["reward"], row["action_id"]))
    if len(usable) <= per_step:
        return usable
    positions = np.linspace(0, len(usable) - 1, per_step).round().astype(int)
    return [usable[i] for i in dict.fromkeys(positions.tolist())]


def instances(table: Any, *, per_step: int, max_steps: int, limit: int) -> list[dict[str, Any]]:
    """Small instances from the table's checklist plans: tasks with 2..`max_steps` steps, one family after
    another (round robin), so that a few instances span the goal families."""
    rows = [row for row in table.to_list() if row["plan"] == CHECKLIST_PLAN]
    by_task: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for row in rows:
        by_task.setdefault(row["task_id"], {}).setdefault(row["step_id"], []).append(row)
    by_family: dict[str, list[str]] = {}
    for task_id, steps in by_task.items():
        if 2 <= len(steps) <= max_steps:
            by_family.setdefault(next(iter(steps.values()))[0]["family"], []).append(task_id)
    order = [t for group in itertools.zip_longest(*by_family.values()) for t in group if t is not None]
    found = []
    for task_id in order[:limit]:
        ordered = sorted(by_task[task_id].values(), key=lambda step_rows: step_rows[0]["step_index"])
        found.append({"task_id": task_id, "steps": [pick_actions(step, per_step) for step in ordered]})
    return found


def _masks(task: Task, runner: Runner, regions: list[str]) -> dict[str, np.ndarray]:
    image, _ = prepare(task, runner.store)
    catalog = load_catalog(runner.store, image["id"])
    size = (image["width"], image["height"])
    return {
        region: region_mask(json.loads(region), size, catalog=catalog, store=runner.store) > 0.5
        for region in regions
    }


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    smaller = min(int(a.sum()), int(b.sum()))
    return smaller > 0 and int((a & b).sum()) > OVERLAP_FRACTION * smaller


def rollout(task: Task, instance: dict[str, Any], runner: Runner) -> dict[str, Any]:
    """Every action sequence of the instance, rolled out and judged; correlations, agreement and costs."""
    from scipy.stats import kendalltau, spearmanr

    image, _ = prepare(task, runner.store)
    steps = instance["steps"]
    judged = steps[0][0]["passed"] + steps[0][0]["failed"]
    checklist = [item for item in task.checklist if item.id in judged]
    baseline = runner.verdict(task.goal, image, image["id"], checklist)
    base_score = len(baseline["passed"]) / len(checklist)
    masks = _masks(task, runner, sorted({row["region"] for step in steps for row in step}))
    tool_calls, judge_calls = runner.tool_calls, runner.judge_calls
    sequences = []
    for choice in itertools.product(*steps):
        current = image["id"]
        for row in choice:  # a failing call leaves the image as it was, as in a real run
            current = (
                runner.apply(current, row["tool"], json.loads(row["region"]), json.loads(row["args"])).get(
                    "output"
                )
                or current
            )
        verdict = runner.verdict(task.goal, image, current, checklist)
        if "failure" in verdict:
            continue
        additive = sum(row["reward"] for row in choice)
        overlap = any(
            _overlap(masks[a["region"]], masks[b["region"]]) for a, b in itertools.combinations(choice, 2)
        )
        sequences.append(
            {
                "actions": [f"{row['tool']}@{json.loads(row['region'])}:{row['preset']}" for row in choice],
                "additive": additive,
                "exact": len(verdict["passed"]) / len(checklist),
                "error": abs(len(verdict["passed"]) / len(checklist) - (base_score + additive)),
                "overlap": overlap,
            }
        )
    additive = [s["additive"] for s in sequences]
    exact = [s["exact"] for s in sequences]
    constant = len(set(exact)) < 2 or len(set(additive)) < 2
    best = max(range(len(sequences)), key=lambda i: (additive[i], -i))
    counts = [len(step) for step in steps]
    distinct = len({row["action_id"] for step in steps for row in step})
    return {
        "task_id": task.id,
        "steps": len(steps),
        "actions_per_step": counts,
        "sequences": len(sequences),
        "spearman": None if constant else float(spearmanr(additive, exact).statistic),
        "kendall": None if constant else float(kendalltau(additive, exact).statistic),
        "top1": exact[best] == max(exact),
        "best_exact": max(exact),
        "chosen_exact": exact[best],
        "error_overlap": _mean([s["error"] for s in sequences if s["overlap"]]),
        "error_disjoint": _mean([s["error"] for s in sequences if not s["overlap"]]),
        "overlap_share": _mean([float(s["overlap"]) for s in sequences]),
        "exhaustive_tool_calls": sum(math.prod(counts[: k + 1]) for k in range(len(counts))),
        "exhaustive_judge_calls": math.prod(counts),
        "additive_tool_calls": distinct,
        "additive_judge_calls": distinct + 1,
        "new_tool_calls": runner.tool_calls - tool_calls,
        "new_judge_calls": runner.judge_calls - judge_calls,
        "sequences_detail": sequences,
    }


def analytic_costs(steps: int, actions: int) -> dict[str, Any]:
    """Judge calls for K steps of |A| candidate actions: exhaustive rollouts |A|^K; the table K·|A| + 1 (one
    per step and action, plus the original; pixplan's table judges an action once for all steps, so |A| + 1,
    but the ratio is given for the per-step count, the conservative one)."""
    exhaustive = actions**steps
    table = steps * actions + 1
    return {
        "steps": steps,
        "actions": actions,
        "exhaustive": exhaustive,
        "table": table,
        "ratio": round(exhaustive / table, 1),
    }


def run_exact(
    table_dir: str | os.PathLike[str],
    *,
    judge: str = "metric",
    per_step: int = 3,
    max_steps: int = 3,
    limit: int = 10,
    out: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Roll out `limit` small instances of the table in `table_dir`; write and return the report."""
    table_dir = Path(table_dir)
    table = load_table(table_dir)
    tasks = {task.id: task for task in load_tasks(table_dir / "tasks.jsonl")}
    runner = Runner.open(table_dir, load_judge(judge))
    results = [
        rollout(tasks[instance["task_id"]], instance, runner)
        for instance in instances(table, per_step=per_step, max_steps=max_steps, limit=limit)
    ]
    if not results:
        raise ValueError(f"no task in {table_dir} has 2..{max_steps} steps to roll out")
    defined = [r for r in results if r["spearman"] is not None]
    actions_per_task = round(table.to_pandas().groupby("task_id")["action_id"].nunique().mean())
    summary = {
        "instances": len(results),
        "sequences": sum(r["sequences"] for r in results),
        "correlated_instances": len(defined),
        "spearman_mean": _mean([r["spearman"] for r in defined]),
        "spearman_median": _median([r["spearman"] for r in defined]),
        "kendall_mean": _mean([r["kendall"] for r in defined]),
        "top1_agreement": _mean([float(r["top1"]) for r in results]),
        "error_overlap": _mean([r["error_overlap"] for r in results if r["error_overlap"] is not None]),
        "error_disjoint": _mean([r["error_disjoint"] for r in results if r["error_disjoint"] is not None]),
        "exhaustive_tool_calls": sum(r["exhaustive_tool_calls"] for r in results),
        "exhaustive_judge_calls": sum(r["exhaustive_judge_calls"] for r in results),
        "additive_tool_calls": sum(r["additive_tool_calls"] for r in results),
        "additive_judge_calls": sum(r["additive_judge_calls"] for r in results),
        "analytic": [
            analytic_costs(steps, actions)
            for steps in (2, 3, 4)
            for actions in (per_step, 10, actions_per_task)
        ],
        "actions_per_task": actions_per_task,
        "judge": judge,
    }
    summary["judge_call_ratio"] = round(
        summary["exhaustive_judge_calls"] / summary["additive_judge_calls"], 2
    )
    summary["tool_call_ratio"] = round(summary["exhaustive_tool_calls"] / summary["additive_tool_calls"], 2)
    report = {"summary": summary, "instances": results}
    path = Path(out) if out is not None else table_dir / "exact.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    return report


def markdown(summary: dict[str, Any]) -> str:
    """The README's table of an exact run."""
    lines = [
        "| instances | sequences | Spearman (mean / median) | Kendall | top-1 | error, overlapping / disjoint steps "
        "| judge calls exhaustive / additive | tool calls exhaustive / additive |",
        "|---|---|---|---|---|---|---|---|",
        f"| {summary['instances']} | {summary['sequences']} | {_fmt(summary['spearman_mean'])} / "
        f"{_fmt(summary['spearman_median'])} | {_fmt(summary['kendall_mean'])} | "
        f"{_fmt(summary['top1_agreement'])} | {_fmt(summary['error_overlap'])} / "
        f"{_fmt(summary['error_disjoint'])} | {summary['exhaustive_judge_calls']} / "
        f"{summary['additive_judge_calls']} ({summary['judge_call_ratio']}x) | "
        f"{summary['exhaustive_tool_calls']} / {summary['additive_tool_calls']} ({summary['tool_call_ratio']}x) |",
    ]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 4) if values else None
