"""`pixplan eval` and `pixplan tasks`: run the benchmark, compare runs, generate tasks.

pixplan eval --split test --system rule_based --out runs/rb      # then open runs/rb/report.html
pixplan eval compare runs/rb runs/oracle                         # per family and per task differences
pixplan eval table runs/*                                        # one Markdown row per run
pixplan tasks generate --out my-benchmark                        # tasks.jsonl + images/
pixplan tasks check my-tasks/                                    # both calibrations; exit code 1 on a problem
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from functools import partial
from pathlib import Path

SYSTEM_NAMES = ("oracle", "rule_based", "single_step", "random", "llm")


def _system(args: argparse.Namespace):
    """The small name-to-callable table of the CLI edge."""
    from pixplan.training import systems

    if args.system == "llm":
        from pixplan.graph.models import DEFAULT_MODEL, DEFAULT_ORCHESTRATOR, DEFAULT_PLANNER

        # Always recorded, like hints: a figure says which models (and which adapters) made it.
        settings = {
            "planner": args.planner or (DEFAULT_MODEL if args.untrained else DEFAULT_PLANNER),
            "orchestrator": args.orchestrator or (DEFAULT_MODEL if args.untrained else DEFAULT_ORCHESTRATOR),
        }
        if args.graph_judge is not None:
            settings["judge"] = args.graph_judge
        settings["hints"] = args.hints  # always recorded: a figure says whether the model or the hint chose
        from pixplan.graph.context import Context

        # Recorded either way, the graph's default when not given: it decides which steps run.
        replan = args.replan_failed_step
        settings["replan_failed_step"] = Context().replan_failed_step if replan is None else replan
        return partial(systems.llm, **settings), settings
    table = {
        "oracle": systems.oracle,
        "rule_based": systems.rule_based,
        "single_step": partial(systems.single_step, instruction_tool=args.instruction_tool),
        "random": partial(systems.random_system, seed=args.seed),
    }
    settings = {"instruction_tool": args.instruction_tool} if args.system == "single_step" else {}
    if args.system == "random":
        settings["seed"] = args.seed
    return table[args.system], settings


def _tasks(args: argparse.Namespace):
    from pixplan.training.benchmark import bundled_path, bundled_tasks
    from pixplan.training.benchmarks_external import is_external, load_external
    from pixplan.training.tasks import load_tasks

    if args.tasks is None:
        if not (bundled_path() / "tasks.jsonl").exists():
            print(
                f"generating the bundled benchmark into {bundled_path()} (once; about a minute)",
                file=sys.stderr,
            )
        tasks = bundled_tasks(args.split)
    elif is_external(Path(args.tasks)):
        tasks = load_external(Path(args.tasks))
    else:
        tasks = load_tasks(args.tasks, args.split)
    if args.family:
        tasks = [task for task in tasks if task.family in args.family]
    if args.per_family:
        counts: Counter[str] = Counter()
        sample = []
        for task in tasks:
            if counts[task.family] < args.per_family:
                counts[task.family] += 1
                sample.append(task)
        tasks = sample
    return tasks[: args.limit] if args.limit else tasks


def run_eval(args: argparse.Namespace) -> int:
    from pixplan.graph.models import load_judge
    from pixplan.training.evaluate import evaluate, markdown_table

    tasks = _tasks(args)
    if not tasks:
        raise SystemExit("no tasks to evaluate (check --tasks, --split and --family)")
    system, settings = _system(args)
    out = Path(args.out or f"runs/{args.system}-{args.split}")
    summary = evaluate(
        tasks,
        system,
        out,
        system_name=args.system,
        judge=load_judge(args.judge),  # an LLM judge caches verdicts in the run's store
        workers=args.workers,
        progress=not args.quiet,
        settings={**settings, "split": args.split, "tasks": args.tasks or "bundled"},
    )
    print(markdown_table([summary]), end="")
    if summary["n_scored"] < summary["n_tasks"]:
        print(
            f"{summary['n_tasks'] - summary['n_scored']} tasks have no item the judge could verify "
            "(the metric judge needs typed checks: try --judge <chat model spec>)",
            file=sys.stderr,
        )
    this_run = summary["this_run"]
    print(
        f"\n{this_run['evaluated']} tasks evaluated, {this_run['cached']} cached, "
        f"{this_run['wall_seconds']:.1f} s. Report: {out / 'report.html'}"
    )
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from pixplan.training.evaluate import compare_runs

    print(compare_runs(args.run_a, args.run_b), end="")
    return 0


def run_table(args: argparse.Namespace) -> int:
    """One row per run, or with --merge one row for all their tasks together (a run split over processes)."""
    from pixplan.training.evaluate import markdown_table, merge_runs

    if args.merge:
        summaries = [merge_runs(args.runs, system=args.merge)]
    else:
        summaries = [json.loads((Path(run) / "summary.json").read_text()) for run in args.runs]
    print(markdown_table(summaries), end="")
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Rebuild the report of a finished run from its files."""
    from pixplan.training.evaluate import load_run
    from pixplan.training.report import write_report

    summary, results = load_run(args.run)
    print(write_report(Path(args.run), summary, sorted(results.values(), key=lambda r: r["task"])))
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from pixplan.training.benchmark import file_digest, generate_tasks

    size = tuple(int(v) for v in args.size.split("x")) if args.size else None
    tasks = generate_tasks(args.out, seed=args.seed, per_family=args.per_family, size=size)
    splits = Counter(task.split for task in tasks)
    print(
        f"{len(tasks)} tasks in {Path(args.out) / 'tasks.jsonl'} ({dict(splits)}); digest {file_digest(Path(args.out))[:16]}"
    )
    return 0


def run_check(args: argparse.Namespace) -> int:
    import tempfile

    from pixplan.tools.store import ImageStore
    from pixplan.training.benchmark import bundled_tasks
    from pixplan.training.task_check import check_tasks
    from pixplan.training.tasks import load_tasks

    tasks = load_tasks(args.folder, args.split) if args.folder else bundled_tasks(args.split)
    if not tasks:
        raise SystemExit(
            f"no tasks to check in {args.folder or 'the bundled benchmark'} (split {args.split})"
        )
    broken: list[str] = []
    count = 0
    with tempfile.TemporaryDirectory(prefix="pixplan-check-") as folder:
        for task, problems, notes in check_tasks(tasks, ImageStore(Path(folder))):
            count += 1
            for line in [*map(str, problems), *notes]:
                print(line, flush=True)
            if problems:
                broken.append(task.id)
    if broken:
        print(f"{len(broken)} of {count} tasks break a calibration: {', '.join(broken)}")
        return 1
    print(
        f"{count} tasks: the untouched image fails every change item and passes every keep item; "
        "the ground truth passes every item"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a system on the benchmark (or compare runs)",
        description="Evaluate a system on benchmark tasks; writes images, traces, summary.json and report.html.",
    )
    parser.add_argument(
        "--tasks",
        help="tasks.jsonl (or its folder), or an external benchmark folder; default: the bundled benchmark",
    )
    parser.add_argument(
        "--split", default="test", choices=["train", "val", "test", "all"], help="default: test"
    )
    parser.add_argument("--system", default="rule_based", choices=SYSTEM_NAMES, help="default: rule_based")
    parser.add_argument("--limit", type=int, help="evaluate only the first N tasks")
    parser.add_argument("--family", action="append", help="only tasks of this goal family (repeatable)")
    parser.add_argument(
        "--per-family", type=int, help="only the first N tasks of each family (a cross-family sample)"
    )
    parser.add_argument(
        "--out", help="run folder (default: runs/<system>-<split>); finished tasks in it are skipped"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="tasks in parallel (threads; for remote model backends)"
    )
    parser.add_argument(
        "--judge", default="metric", help="'metric' (default) or a chat model spec for the LLM judge"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random system")
    parser.add_argument(
        "--instruction-tool", help="single_step: a tool with a `prompt` argument to give the goal to"
    )
    parser.add_argument("--planner", help="llm: planner model spec")
    parser.add_argument("--orchestrator", help="llm: orchestrator model spec")
    parser.add_argument("--graph-judge", help="llm: the graph's own judge ('metric' or a model spec)")
    parser.add_argument(
        "--untrained",
        action="store_true",
        help="llm: the base local model for planner and orchestrator, no adapters (default: the shipped "
        "planner and orchestrator adapters; --planner/--orchestrator still override)",
    )
    parser.add_argument(
        "--no-hints",
        dest="hints",
        action="store_false",
        help="llm: local models choose options by likelihood alone (default: prefer what the step names)",
    )
    parser.add_argument(
        "--replan-failed-step",
        action=argparse.BooleanOptionalAction,
        help="llm: a step the judge still fails after its retries is replanned at once; --no-...: it is left, "
        "the plan goes on and the final judgement replans (default: the graph's)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_eval)
    commands = parser.add_subparsers(dest="eval_command", metavar="{compare,table,report}")
    compare = commands.add_parser("compare", help="differences between two runs, per family and per task")
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    compare.set_defaults(func=run_compare)
    table = commands.add_parser("table", help="one Markdown row per run")
    table.add_argument("runs", nargs="+")
    table.add_argument(
        "--merge",
        metavar="NAME",
        help="one row named NAME for the tasks of all the runs (say, one split over families); "
        "a task in two runs is an error",
    )
    table.set_defaults(func=run_table)
    report = commands.add_parser("report", help="rebuild a run's report.html")
    report.add_argument("run")
    report.set_defaults(func=run_report)

    tasks = subparsers.add_parser(
        "tasks", help="generate or check benchmark tasks", description="Benchmark tasks."
    )
    task_commands = tasks.add_subparsers(dest="tasks_command", required=True, metavar="{generate,check}")
    generate = task_commands.add_parser("generate", help="write tasks.jsonl and images/ into a folder")
    generate.add_argument("--out", required=True)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--per-family", type=int, default=25, help="tasks per goal family (12 families)")
    generate.add_argument("--size", help="fixed image size WxH (default: varied)")
    generate.set_defaults(func=run_generate)
    check = task_commands.add_parser(
        "check",
        help="check a task folder: the untouched image fails every change item and passes every keep item, "
        "the ground truth passes every item",
        description="Run both calibrations on every task; print each item that breaks one; exit code 1 if any.",
    )
    check.add_argument("folder", nargs="?", help="tasks.jsonl or its folder (default: the bundled benchmark)")
    check.add_argument("--split", default="all", choices=["train", "val", "test", "all"], help="default: all")
    check.set_defaults(func=run_check)
