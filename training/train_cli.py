"""`pixplan train collect|exact|sft|dpo|grpo|planner|all`: reward tables, their exactness check, orchestrator and
planner training, and the whole sequence that reproduces the shipped adapters, as TRL-style entry points.

Each job's settings are a config dataclass whose fields carry `metadata={"help": ...}`, parsed by TRL's
`TrlParser`: a YAML file through `--config` (see `training/configs/`), then command-line flags over it.

    pixplan train collect --config training/configs/collect.yaml --per_family 3
    pixplan train exact --config training/configs/exact.yaml
    pixplan train sft --config training/configs/sft.yaml      (training/train_orchestrator.py)
    pixplan train grpo --config training/configs/grpo.yaml    (training/train_grpo.py)
    pixplan train planner --config training/configs/planner.yaml    (training/train_planner.py)
    pixplan train all --out runs/train-all [--hold_out night retro rural] [--ship true]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field


@dataclass
class CollectConfig:
    """Collect reward tables: every candidate action of each task, applied once and judged once."""

    out: str = field(default="runs/rewards", metadata={"help": "Folder of the reward table (resumable)."})
    tasks: str | None = field(
        default=None, metadata={"help": "tasks.jsonl (or its folder); default: the bundled benchmark."}
    )
    split: str = field(default="train", metadata={"help": "Task split: train, val, test or all."})
    family: list[str] | None = field(default=None, metadata={"help": "Only these goal families."})
    per_family: int | None = field(default=None, metadata={"help": "Only the first N tasks of each family."})
    limit: int | None = field(default=None, metadata={"help": "Only the first N tasks."})
    judge: str = field(
        default="metric", metadata={"help": "'metric' (pixel checks) or a chat model spec for the LLM judge."}
    )
    planner: str | None = field(
        default=None,
        metadata={"help": "A planner model spec: its plans are rewarded beside the task's checklist plan."},
    )
    tools: list[str] | None = field(
        default=None, metadata={"help": "Only these tools' actions (default: every classical tool)."}
    )
    workers: int | None = field(
        default=None, metadata={"help": "Processes in the local pool (default: one per CPU; 1: no pool)."}
    )
    ray: str | None = field(
        default=None,
        metadata={"help": "Run tasks on Ray: a cluster address, 'auto', or 'local' for a local instance."},
    )


@dataclass
class ExactConfig:
    """Roll out small instances exhaustively: how well additive rewards rank whole edits."""

    table: str = field(default="runs/rewards", metadata={"help": "Folder of a collected reward table."})
    out: str | None = field(default=None, metadata={"help": "Report file (default: <table>/exact.json)."})
    judge: str = field(default="metric", metadata={"help": "The judge of the final images (as for collect)."})
    per_step: int = field(
        default=3, metadata={"help": "Candidate actions per step (spread over the rewards)."}
    )
    max_steps: int = field(default=3, metadata={"help": "Only tasks whose plan has 2..max_steps steps."})
    instances: int = field(default=10, metadata={"help": "How many tasks to roll out exhaustively."})


@dataclass
class AllConfig:
    """Reproduce the shipped adapters from scratch: collect, then the orchestrator's SFT, then the planner's."""

    out: str = field(default="runs/train-all", metadata={"help": "Folder of the table and both adapters."})
    tasks: str | None = field(
        default=None, metadata={"help": "tasks.jsonl (or its folder); default: the bundled benchmark."}
    )
    per_family: int = field(default=5, metadata={"help": "Train tasks collected per goal family."})
    hold_out: list[str] | None = field(
        default=None, metadata={"help": "Goal families left out of collection and training (several after one flag)."}
    )
    workers: int | None = field(default=None, metadata={"help": "Collection processes (default: one per CPU)."})
    tools: list[str] | None = field(
        default=None, metadata={"help": "Only these tools' actions (default: every classical tool)."}
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Base model of both adapters (default: the local SmolLM2-135M-Instruct)."}
    )
    orchestrator_steps: int = field(
        default=-1, metadata={"help": "Optimizer steps of the orchestrator's SFT (-1: sft.yaml's epochs)."}
    )
    planner_steps: int = field(
        default=-1, metadata={"help": "Optimizer steps of the planner's SFT (-1: planner.yaml's epochs)."}
    )
    ship: bool = field(
        default=False,
        metadata={"help": "Copy both adapters (float16) into graph/local/adapters/, the offline defaults."},
    )


def parse(config_class: type, argv: list[str], job: str):
    """The job's config from YAML and flags; a list flag given twice is refused (argparse would keep the last)."""
    import dataclasses

    from trl import TrlParser

    for config_field in dataclasses.fields(config_class):
        flag = f"--{config_field.name}"
        if "list" in str(config_field.type) and argv.count(flag) > 1:
            raise SystemExit(
                f"pixplan train {job}: give {flag} once, with every value after it ({flag} A B C)"
            )
    return TrlParser((config_class,), prog=f"pixplan train {job}").parse_args_and_config(argv)[0]


def run_collect(args: argparse.Namespace) -> int:
    from pixplan.training.eval_cli import _tasks
    from pixplan.training.rewards import collect, select_tools

    config = parse(CollectConfig, args.rest, "collect")
    try:
        select_tools(config.tools)
    except ValueError as error:
        raise SystemExit(f"pixplan train collect: {error}") from None
    if any(value is not None and value < 1 for value in (config.per_family, config.limit)):
        raise SystemExit("pixplan train collect: --per_family and --limit must be at least 1")
    if config.workers is not None and config.workers < 1:
        raise SystemExit("pixplan train collect: --workers must be at least 1")
    selection = argparse.Namespace(
        tasks=config.tasks,
        split=config.split,
        family=config.family,
        per_family=config.per_family,
        limit=config.limit,
    )
    tasks = _tasks(selection)
    if not tasks:
        raise SystemExit("pixplan train collect: no task matches the selection")
    summary = collect(
        tasks,
        config.out,
        judge=config.judge,
        planner=config.planner,
        workers=config.workers,
        ray_address=config.ray,
        tools=config.tools,
    )
    print(json.dumps(summary, indent=1))
    return 0


def run_exact(args: argparse.Namespace) -> int:
    from pixplan.training.exact import markdown
    from pixplan.training.exact import run_exact as exact

    config = parse(ExactConfig, args.rest, "exact")
    if min(config.per_step, config.instances) < 1 or config.max_steps < 2:
        raise SystemExit("pixplan train exact: --per_step and --instances need >= 1, --max_steps >= 2")
    report = exact(
        config.table,
        judge=config.judge,
        per_step=config.per_step,
        max_steps=config.max_steps,
        limit=config.instances,
        out=config.out,
    )
    print(json.dumps(report["summary"], indent=1))
    print(markdown(report["summary"]))
    return 0


def run_all(args: argparse.Namespace) -> int:
    """collect -> sft (orchestrator) -> planner, each timed; `--ship` makes the results the shipped adapters."""
    import time
    from pathlib import Path

    from pixplan.training import train_orchestrator, train_planner
    from pixplan.training.eval_cli import _tasks
    from pixplan.training.families import FAMILIES
    from pixplan.training.rewards import collect

    config = parse(AllConfig, args.rest, "all")
    unknown = sorted(set(config.hold_out or ()) - set(FAMILIES))
    if unknown:
        raise SystemExit(f"pixplan train all: unknown families {unknown} in --hold_out")
    out = Path(config.out)
    selection = argparse.Namespace(
        tasks=config.tasks, split="train", family=None, per_family=config.per_family, limit=None
    )
    tasks = [task for task in _tasks(selection) if task.family not in (config.hold_out or ())]
    if not tasks:
        raise SystemExit("pixplan train all: no train task left to collect")
    stages: dict[str, float] = {}
    start = time.perf_counter()
    collect(tasks, out / "rewards", workers=config.workers, tools=config.tools)
    stages["collect"] = round(time.perf_counter() - start, 1)
    configs = Path(__file__).parent / "configs"
    table = ["--table", str(out / "rewards")]
    if config.model_name_or_path:
        table += ["--model_name_or_path", config.model_name_or_path]
    start = time.perf_counter()
    sft = ["--config", str(configs / "sft.yaml"), *table, "--output_dir", str(out / "orchestrator")]
    sft += ["--max_steps", str(config.orchestrator_steps)]
    train_orchestrator.train("sft", *train_orchestrator.parse("sft", sft))
    stages["orchestrator_sft"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    planner = ["--config", str(configs / "planner.yaml"), *table, "--output_dir", str(out / "planner")]
    planner += ["--max_steps", str(config.planner_steps)]
    train_planner.train(*train_planner.parse(planner))
    stages["planner_sft"] = round(time.perf_counter() - start, 1)
    summary = {"tasks": len(tasks), "hold_out": config.hold_out or [], "seconds": stages}
    if config.ship:
        from pixplan.training.train_planner import ship_adapter

        summary["shipped"] = [str(ship_adapter(out / name, name)) for name in ("orchestrator", "planner")]
    (out / "train_all.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from pixplan.training import train_grpo, train_orchestrator, train_planner

    parser = subparsers.add_parser(
        "train",
        help="learning: reward tables (collect), their exactness check (exact), orchestrator (sft, dpo, grpo) "
        "and planner training",
        description="Learning jobs. Each takes --config FILE.yaml and flags (`pixplan train JOB --help`).",
    )
    jobs = parser.add_subparsers(
        dest="train_command", required=True, metavar="{collect,exact,sft,dpo,grpo,planner,all}"
    )
    for name, func, help_text in (
        ("collect", run_collect, CollectConfig.__doc__),
        ("exact", run_exact, ExactConfig.__doc__),
        ("sft", train_orchestrator.run_sft, "SFT of the orchestrator (LoRA) on each step's best action."),
        ("dpo", train_orchestrator.run_dpo, "DPO of the orchestrator (LoRA) on best versus worse actions."),
        ("grpo", train_grpo.run_grpo, "The orchestrator (LoRA) towards the table's rewards (listwise, GRPO)."),
        ("planner", train_planner.run_planner, "Planner self-training (LoRA): SFT on checklist-scored plans."),
        ("all", run_all, AllConfig.__doc__),
    ):
        # Every flag after the job belongs to TrlParser: this parser takes no options of its own.
        job = jobs.add_parser(name, help=help_text.strip(), add_help=False, prefix_chars="+")
        job.add_argument("rest", nargs="*", help="--config FILE and the config's flags")
        job.set_defaults(func=func)
