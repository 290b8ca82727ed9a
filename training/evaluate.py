"""Evaluate a system on benchmark tasks: per-task images, traces and verdicts; a summary, a table, a report.

    pixplan eval --split test --system rule_based --out runs/rb    # then open runs/rb/report.html

A run folder holds, per task, `tasks/<id>/final.png`, `trace.json` (the system's tool calls, or the graph's
full trace) and `result.json` (the per-item verdicts and score); then `summary.json`, `summary.md`,
`report.html` with its thumbnails and plots. A task whose `result.json` exists is never run or judged again,
so an interrupted run resumes, and rerunning a finished run makes no model or judge call.

Scores: a task's score is the fraction of its checklist items that pass (items without a typed check are not
counted by the metric judge); a task passes when every counted item does. `mean_score` and `pass_rate` average
these over tasks.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from pixplan.graph.models import load_judge
from pixplan.graph.schemas import Judge, JudgeFailure, JudgeRequest
from pixplan.tools.store import ImageRef, ImageStore
from pixplan.training.report import write_report
from pixplan.training.systems import Outcome
from pixplan.training.tasks import Task, prepare

#: system(task, store, image) -> Outcome
System = Callable[[Task, ImageStore, ImageRef], Outcome]


def _write_json(path: Path, payload: Any) -> None:
    """Write atomically: a killed run never leaves a half-written result that would count as finished."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(handle, "w") as file:
        json.dump(payload, file, indent=1, default=str)
    os.replace(temporary, path)


def judge_outcome(
    task: Task, store: ImageStore, image: ImageRef, final_id: str, judge: Judge
) -> dict[str, Any]:
    """Per-item verdicts of the final image on the task's whole checklist, by the run's judge.

    Items the judge gives no verdict for (the metric judge skips items without a typed check) are
    `unverifiable` and not counted.
    """
    request = JudgeRequest(
        scope="final",
        goal=task.goal,
        original=image,
        before=image,
        after=store.ref(final_id),
        store=store,
        checklist=task.checklist,
    )
    verdict = judge.judge(request)
    if isinstance(verdict, JudgeFailure):
        return {"judge": judge.name, "items": [], "unverifiable": [], "failure": verdict.model_dump()}
    judged = {item.id for item in verdict.checklist}
    return {
        "judge": judge.name,
        "items": [item.model_dump() for item in verdict.checklist],
        "unverifiable": [item.id for item in task.checklist if item.id not in judged],
        "verdict": verdict.model_dump(),
    }


def evaluate_task(
    task: Task, system: System, run_dir: Path, store: ImageStore, *, judge: Judge
) -> tuple[dict[str, Any], bool]:
    """Run and judge one task, or read its finished result; returns (result, whether it was cached)."""
    task_dir = run_dir / "tasks" / task.id
    result_path = task_dir / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text()), True
    image, _catalog = prepare(task, store)
    start = time.perf_counter()
    error = None
    try:
        outcome = system(task, store, image)
    except Exception as exc:  # a crashing system scores its untouched image; the error is reported
        outcome, error = Outcome(image_id=image["id"]), f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    judged = judge_outcome(task, store, image, outcome.image_id, judge)
    judge_seconds = time.perf_counter() - start
    items = judged["items"]
    passed = sum(item["passed"] for item in items)
    task_dir.mkdir(parents=True, exist_ok=True)
    store.get(outcome.image_id).save(task_dir / "final.png")
    _write_json(task_dir / "trace.json", outcome.trace or {"goal": task.goal, "steps": outcome.steps})
    result = {
        "task": task.id,
        "family": task.family,
        "split": task.split,
        "goal": task.goal,
        "image": str(task.image),
        "original_id": image["id"],
        "final_id": outcome.image_id,
        "score": passed / len(items) if items else None,
        "passed": bool(items) and passed == len(items),
        "checklist": [
            {**item.model_dump(exclude_none=True), "keep": item.id in task.keep} for item in task.checklist
        ],
        **judged,
        "steps": outcome.steps,
        "error": error,
        "model_calls": outcome.model_calls,
        "judge_calls": 1,
        "seconds": round(seconds, 3),
        "judge_seconds": round(judge_seconds, 3),
    }
    _write_json(result_path, result)
    return result, False


def evaluate(
    tasks: list[Task],
    system: System,
    out: str | os.PathLike[str],
    *,
    system_name: str,
    judge: Judge | None = None,
    workers: int = 1,
    progress: bool = True,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate `system` on `tasks` into the run folder `out`; returns the summary (also written there).

    `workers` > 1 runs tasks in a thread pool: worth it for remote model backends, whose calls wait on the
    network; local tools and models are CPU-bound and gain little.
    """
    from tqdm.auto import tqdm

    judge = judge if judge is not None else load_judge("metric")
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    store = ImageStore(run_dir / "store")
    start = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    new = new_model_calls = 0
    bar = tqdm(total=len(tasks), desc=f"{system_name}", unit="task", disable=not progress)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {
                pool.submit(evaluate_task, task, system, run_dir, store, judge=judge): task for task in tasks
            }
            for future in as_completed(futures):
                result, cached = future.result()
                results[result["task"]] = result
                new += not cached
                new_model_calls += 0 if cached else result["model_calls"]
                bar.update()
    else:
        for task in tasks:
            result, cached = evaluate_task(task, system, run_dir, store, judge=judge)
            results[result["task"]] = result
            new += not cached
            new_model_calls += 0 if cached else result["model_calls"]
            bar.set_postfix(score=f"{result['score'] if result['score'] is not None else float('nan'):.2f}")
            bar.update()
    bar.close()
    ordered = [results[task.id] for task in tasks]
    summary = summarise(ordered, system=system_name, judge=judge.name)
    summary["settings"] = settings or {}
    summary["this_run"] = {
        "evaluated": new,
        "cached": len(tasks) - new,
        "model_calls": new_model_calls,
        "judge_calls": new,
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    _write_json(run_dir / "summary.json", summary)
    (run_dir / "summary.md").write_text(markdown_summary(summary))
    write_report(run_dir, summary, ordered)
    return summary


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summarise(results: list[dict[str, Any]], *, system: str, judge: str = "metric") -> dict[str, Any]:
    """Aggregate per-task results: overall, per family, per kind of check, change versus keep items."""
    scored = [r for r in results if r["score"] is not None]
    families: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in scored:
        families[result["family"]].append(result)
    by_check: dict[str, list[bool]] = defaultdict(list)
    change, keep = [], []
    for result in scored:
        kinds = {item["id"]: (item.get("check") or {}).get("type") for item in result["checklist"]}
        keeps = {item["id"] for item in result["checklist"] if item.get("keep")}
        for item in result["items"]:
            by_check[kinds.get(item["id"]) or "untyped"].append(item["passed"])
            (keep if item["id"] in keeps else change).append(item["passed"])
    return {
        "system": system,
        "judge": judge,
        "n_tasks": len(results),
        "n_scored": len(scored),
        "n_errors": sum(bool(r.get("error")) for r in results),
        "mean_score": _mean([r["score"] for r in scored]),
        "pass_rate": _mean([float(r["passed"]) for r in scored]),
        "change_items_passed": _mean([float(v) for v in change]),
        "keep_items_passed": _mean([float(v) for v in keep]),
        "per_family": {
            family: {
                "n": len(items),
                "mean_score": _mean([r["score"] for r in items]),
                "pass_rate": _mean([float(r["passed"]) for r in items]),
            }
            for family, items in sorted(families.items())
        },
        "per_check": {
            kind: {"n": len(v), "passed": _mean([float(x) for x in v])}
            for kind, v in sorted(by_check.items())
        },
        "model_calls": sum(r["model_calls"] for r in results),
        "judge_calls": sum(r.get("judge_calls", 0) for r in results),
        "seconds": round(sum(r["seconds"] for r in results), 2),
        "judge_seconds": round(sum(r.get("judge_seconds", 0.0) for r in results), 2),
        "seconds_per_task": _mean([r["seconds"] + r.get("judge_seconds", 0.0) for r in results]),
    }


TABLE_HEADER = (
    "| system | tasks | mean score | pass rate | change items | keep items | model calls | s/task |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|\n"
)


def _number(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table_row(summary: dict[str, Any]) -> str:
    return (
        f"| {summary['system']} | {summary['n_tasks']} | {_number(summary['mean_score'])} | "
        f"{_number(summary['pass_rate'])} | {_number(summary['change_items_passed'])} | "
        f"{_number(summary['keep_items_passed'])} | {summary['model_calls']} | "
        f"{_number(summary['seconds_per_task'], 2)} |\n"
    )


def markdown_table(summaries: list[dict[str, Any]]) -> str:
    """One row per run, best mean score first."""
    ranked = sorted(summaries, key=lambda s: -(s["mean_score"] or 0.0))
    return TABLE_HEADER + "".join(table_row(summary) for summary in ranked)


def markdown_summary(summary: dict[str, Any]) -> str:
    families = "".join(
        f"| {family} | {row['n']} | {_number(row['mean_score'])} | {_number(row['pass_rate'])} |\n"
        for family, row in summary["per_family"].items()
    )
    checks = "".join(
        f"| {kind} | {row['n']} | {_number(row['passed'])} |\n" for kind, row in summary["per_check"].items()
    )
    return (
        f"# {summary['system']} ({summary['n_tasks']} tasks, judge: {summary['judge']})\n\n"
        + markdown_table([summary])
        + "\n| family | tasks | mean score | pass rate |\n|---|---:|---:|---:|\n"
        + families
        + "\n| check | items | passed |\n|---|---:|---:|\n"
        + checks
    )


def load_run(run_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A finished run's summary and its per-task results by task id."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    results = {}
    for path in sorted((run_dir / "tasks").glob("*/result.json")):
        result = json.loads(path.read_text())
        results[result["task"]] = result
    return summary, results


def merge_runs(run_dirs: list[str | os.PathLike[str]], *, system: str) -> dict[str, Any]:
    """The summary of several finished runs' tasks taken together, as if they were one run.

    For an eval split over processes (say, six families each): the figures are recomputed from the tasks'
    results, not averaged from the runs' summaries. The runs must share their judge and hold no task twice.
    """
    results: dict[str, dict[str, Any]] = {}
    judges = set()
    for run_dir in run_dirs:
        summary, run_results = load_run(run_dir)
        judges.add(summary["judge"])
        twice = sorted(set(results) & set(run_results))
        if twice:
            raise ValueError(f"task {twice[0]} is in more than one of the runs; merge runs of different tasks")
        results.update(run_results)
    if len(judges) > 1:
        raise ValueError(f"the runs were judged differently ({', '.join(sorted(judges))}); merge runs of one judge")
    return summarise([results[task] for task in sorted(results)], system=system, judge=judges.pop())


def compare_runs(run_a: str | os.PathLike[str], run_b: str | os.PathLike[str]) -> str:
    """Markdown: B minus A overall, per family, and per task where the scores differ."""
    summary_a, results_a = load_run(run_a)
    summary_b, results_b = load_run(run_b)
    name_a, name_b = summary_a["system"], summary_b["system"]
    if name_a == name_b:
        name_a, name_b = f"{name_a} ({Path(run_a).name})", f"{name_b} ({Path(run_b).name})"

    def delta(a: float | None, b: float | None) -> str:
        return "n/a" if a is None or b is None else f"{b - a:+.3f}"

    lines = [
        f"# {name_b} vs {name_a}\n",
        f"mean score: {_number(summary_a['mean_score'])} -> {_number(summary_b['mean_score'])} "
        f"({delta(summary_a['mean_score'], summary_b['mean_score'])}); pass rate: "
        f"{_number(summary_a['pass_rate'])} -> {_number(summary_b['pass_rate'])} "
        f"({delta(summary_a['pass_rate'], summary_b['pass_rate'])})\n",
        f"| family | {name_a} | {name_b} | difference |",
        "|---|---:|---:|---:|",
    ]
    for family in sorted(set(summary_a["per_family"]) | set(summary_b["per_family"])):
        a = summary_a["per_family"].get(family, {}).get("mean_score")
        b = summary_b["per_family"].get(family, {}).get("mean_score")
        lines.append(f"| {family} | {_number(a)} | {_number(b)} | {delta(a, b)} |")
    lines += [
        "",
        f"| task | {name_a} | {name_b} | difference | items that flipped |",
        "|---|---:|---:|---:|---|",
    ]
    common = sorted(set(results_a) & set(results_b))
    changed = [task for task in common if results_a[task]["score"] != results_b[task]["score"]]
    changed.sort(key=lambda task: -abs((results_b[task]["score"] or 0) - (results_a[task]["score"] or 0)))
    for task in changed:
        a, b = results_a[task]["score"], results_b[task]["score"]
        before = {item["id"]: item["passed"] for item in results_a[task]["items"]}
        flipped = ", ".join(
            f"{item['id']} {'fail -> pass' if item['passed'] else 'pass -> fail'}"
            for item in results_b[task]["items"]
            if item["id"] in before and before[item["id"]] != item["passed"]
        )
        lines.append(f"| {task} | {_number(a)} | {_number(b)} | {delta(a, b)} | {flipped} |")
    only = sorted(set(results_a) ^ set(results_b))
    lines.append(
        f"\n{len(common)} tasks in both, {len(changed)} with different scores; {len(only)} in one run only."
    )
    return "\n".join(lines) + "\n"
