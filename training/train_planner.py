"""`pixplan train planner`: checklist-guided self-training of the planner (its own LoRA, TRL's SFTTrainer).

Per training task of a reward table, a target plan (`training/planner_data.py`): with ``--targets samples`` the
best of ``--samples`` plans sampled from ``--planner`` (scored against the task's checklist by the table's best
action per step, pruned of the steps no action executed well); with ``--targets checklist`` the task's own
checklist grouped into steps, each written as its best action (pruned the same way). ``--planner`` with a
trained adapter (``local:smollm2+runs/planner``) and ``--targets samples`` is self-training on top of a trained
planner. The prompt is the plan node's request rendered as the local model serves a structured call; the
completion is the plan as the decoder writes it. The adapter, the tokenizer and ``pixplan_planner.json`` (the
coverage report: per task, the samples' best coverage and the target's) go to ``--output_dir``;
``--report_only`` writes the report and trains nothing; ``--init_adapter`` goes on training an adapter already
trained (the shipped one: ``planner``) instead of a new LoRA.

    pixplan train planner --config training/configs/planner.yaml --table runs/rewards
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixplan.graph.models import DEFAULT_MODEL


@dataclass
class PlannerData:
    """Which reward table trains the planner, and from which target plans."""

    table: str = field(default="runs/rewards", metadata={"help": "Folder of a collected reward table."})
    split: str = field(default="train", metadata={"help": "Tasks of this split only: train, val, test or all."})
    targets: str = field(
        default="checklist",
        metadata={"help": "'samples' (the planner's own best plans) or 'checklist' (the task's checklist)."},
    )
    planner: str = field(default=DEFAULT_MODEL, metadata={"help": "The planner sampled from ('samples')."})
    samples: int = field(default=4, metadata={"help": "Plans sampled per task ('samples'; also measured)."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature of the planner."})
    min_coverage: float = field(
        default=0.0, metadata={"help": "Only targets covering more of the task's checklist than this."}
    )
    limit: int | None = field(default=None, metadata={"help": "Only the first N tasks of the table."})
    report_only: bool = field(default=False, metadata={"help": "Score and report the plans; train nothing."})
    init_adapter: str | None = field(
        default=None,
        metadata={
            "help": "Go on training this LoRA ('planner': the shipped one, or an adapter folder) instead of a new "
            "one: new targets for a trained planner, or self-training on top; its own r and modules are kept."
        },
    )


def planner_examples(data: PlannerData, seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The SFT examples (one per task whose target covers more than `min_coverage`) and the coverage report."""
    from pixplan.graph.models import load_chat_model
    from pixplan.training.planner_data import (
        checklist_target,
        example,
        load_rewards,
        plan_coverage,
        plan_errors,
        prune,
        sample_plans,
    )
    from pixplan.training.rewards import checklist_plan

    if data.targets not in ("samples", "checklist"):
        raise ValueError(f"--targets is 'samples' or 'checklist', not {data.targets!r}")
    split = None if data.split == "all" else data.split
    model = load_chat_model(data.planner) if data.samples > 0 else None
    rows, tasks = [], []
    for index, rewards in enumerate(load_rewards(data.table, split, data.limit)):
        entry: dict[str, Any] = {"task_id": rewards.task.id, "family": rewards.task.family}
        best_sample = None
        if model is not None:
            plans = sample_plans(rewards, model, data.samples, data.temperature, seed + 1000 * index)
            scored = sorted(
                ((plan_coverage(plan, rewards), plan) for plan in plans), key=lambda pair: -pair[0]["score"]
            )
            entry |= {"samples": data.samples, "valid": len(plans)}
            entry["sample_coverage"] = [coverage["score"] for coverage, _ in scored]
            if scored:
                best_sample = prune(scored[0][1], scored[0][0])
        checklist = checklist_target(rewards, checklist_plan(rewards.task))
        entry["checklist_coverage"] = plan_coverage(checklist, rewards)["score"] if checklist else 0.0
        target = best_sample if data.targets == "samples" else checklist
        if target is None or plan_errors(target, rewards):
            entry["target"] = None
        else:
            coverage = plan_coverage(target, rewards)
            entry["target"] = coverage["score"]
            if coverage["score"] > data.min_coverage:
                rows.append(example(rewards, target, data.targets, coverage))
        tasks.append(entry)
    best = [max(t["sample_coverage"], default=0.0) for t in tasks if "sample_coverage" in t]
    report = {
        "table": data.table,
        "targets": data.targets,
        "planner": data.planner if model is not None else None,
        "tasks": len(tasks),
        "examples": len(rows),
        "mean_best_sample_coverage": round(sum(best) / len(best), 4) if best else None,
        "mean_checklist_coverage": round(sum(t["checklist_coverage"] for t in tasks) / max(1, len(tasks)), 4),
        "per_task": tasks,
    }
    return rows, report


def train(data: PlannerData, training_args: Any, model_args: Any):
    """Build the examples, train the planner's LoRA, save it with the report; returns (trainer or None, report)."""
    import torch
    from datasets import Dataset
    from trl import SFTTrainer, get_peft_config

    from pixplan.graph.local.chat_format import render_prompt
    from pixplan.training.train_orchestrator import check_length, load_base, warm_start

    if not model_args.use_peft:
        raise SystemExit("pixplan train planner: the planner is trained as a LoRA: set use_peft: true")
    if data.split not in ("train", "val", "test", "all"):
        raise SystemExit(f"pixplan train planner: --split must be train, val, test or all, not {data.split!r}")
    if data.samples < 0 or (data.targets == "samples" and data.samples < 1):
        raise SystemExit("pixplan train planner: --samples must be at least 1 with --targets samples")
    try:
        rows, report = planner_examples(data, seed=training_args.seed)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"pixplan train planner: {error}") from None
    out = Path(training_args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report["init_adapter"] = data.init_adapter  # a warm start is part of what trained it
    (out / "pixplan_planner.json").write_text(json.dumps(report, indent=1))
    if data.report_only:
        return None, report
    if not rows:
        raise SystemExit(f"pixplan train planner: no target plan covers more than {data.min_coverage}")
    on_cpu = not torch.cuda.is_available()
    if on_cpu:
        training_args.use_cpu, training_args.bf16, training_args.fp16 = True, False, False
    model, tokenizer = load_base(model_args, on_cpu)
    peft_config = get_peft_config(model_args)
    if data.init_adapter:
        model, peft_config = warm_start(model, data.init_adapter, "pixplan train planner"), None
    dataset = Dataset.from_dict(
        {
            "prompt": [render_prompt(tokenizer, json.loads(row["messages"])) for row in rows],
            "completion": [row["completion"] for row in rows],
        }
    )
    check_length(dataset, tokenizer, training_args.max_length)
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.train()
    trainer.save_model(str(out))
    return trainer, report


def parse(argv: list[str]):
    import torch
    from trl import ModelConfig, SFTConfig, TrlParser

    parser = TrlParser((PlannerData, SFTConfig, ModelConfig), prog="pixplan train planner")
    if not torch.cuda.is_available():  # TRL's bf16 default fails on CPU as soon as the config is built
        parser.set_defaults(use_cpu=True, bf16=False)
    return parser.parse_args_and_config(argv)[:3]


def run_planner(args: argparse.Namespace) -> int:
    trainer, report = train(*parse(args.rest))
    summary = {k: v for k, v in report.items() if k != "per_task"}
    if trainer is not None:
        summary["last_log"] = trainer.state.log_history[-1]
    print(json.dumps(summary, indent=1))
    return 0


def ship_adapter(folder: str | Path, name: str, adapters_dir: str | Path | None = None) -> Path:
    """Copy a trained adapter into ``graph/local/adapters/<name>`` (the offline default of its role; or into
    `adapters_dir`), its weights in float16 (half the size; they are cast back to the base model's dtype when
    loaded). Its record keeps the folder names of the paths that trained it: a path of this machine means
    nothing on a user's."""
    from safetensors.torch import load_file, save_file

    from pixplan.graph.models import SHIPPED_ADAPTERS

    if name not in SHIPPED_ADAPTERS:
        raise ValueError(f"shipped adapters are {SHIPPED_ADAPTERS}, not {name!r}")
    if adapters_dir is None:
        import pixplan.graph.local as local

        adapters_dir = Path(local.__file__).parent / "adapters"
    target = Path(adapters_dir) / name
    target.mkdir(parents=True, exist_ok=True)
    weights = load_file(str(Path(folder) / "adapter_model.safetensors"))
    save_file({key: value.half() for key, value in weights.items()}, str(target / "adapter_model.safetensors"))
    config = json.loads((Path(folder) / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "smollm2"  # pixplan's converted SmolLM2 (graph.models.smollm2_dir)
    (target / "adapter_config.json").write_text(json.dumps(config, indent=1) + "\n")
    for info in Path(folder).glob("pixplan_*.json"):  # what trained it, without the per-task report (task ids
        record = json.loads(info.read_text())  # and families stay out of graph/)
        record.pop("per_task", None)
        for key in ("table", "planner", "init_adapter"):
            if isinstance(record.get(key), str) and Path(record[key]).is_absolute():
                record[key] = Path(record[key]).name
        (target / info.name).write_text(json.dumps(record, indent=1) + "\n")
    return target
