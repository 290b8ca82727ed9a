"""Seconds per TRL training step of the orchestrator (SFT, DPO, GRPO) with SmolLM2-135M-Instruct and a LoRA.

    .venv/bin/python benchmarks/bench_train_orchestrator.py                 # sft and dpo, batch 1, 2 steps
    .venv/bin/python benchmarks/bench_train_orchestrator.py --jobs sft --batch 8 --steps 1
    .venv/bin/python benchmarks/bench_train_orchestrator.py --jobs listwise grpo --batch 4 --steps 2

Collects a reward table on the benchmark's eco task (two tools, a few seconds) in a temporary folder, then
builds the trainers exactly as `pixplan train sft|dpo|grpo` does (`build_trainer`, the LoRA of the YAML files)
and times `trainer.train()` for `--steps` steps. `listwise` and `grpo` are the two objectives of `train grpo`
(a listwise row is one step with `--candidates` actions; a grpo batch is `--batch` rollouts, `--generations` per
step). Prints one JSON object: tokens per row, seconds per step.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--jobs", nargs="+", default=["sft", "dpo"], choices=["sft", "dpo", "listwise", "grpo"]
    )
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--model", default=None, help="a causal LM folder (default: the local SmolLM2)")
    parser.add_argument("--candidates", type=int, default=16, help="listwise: actions scored per step")
    parser.add_argument("--generations", type=int, default=4, help="grpo: rollouts per step")
    args = parser.parse_args()

    import torch
    from trl import DPOConfig, GRPOConfig, ModelConfig, SFTConfig

    from pixplan.training import train_grpo
    from pixplan.training.benchmark import generate_tasks
    from pixplan.training.rewards import collect
    from pixplan.training.train_orchestrator import OrchestratorData, build_trainer

    on_cpu = not torch.cuda.is_available()
    report: dict = {"device": "cpu" if on_cpu else torch.cuda.get_device_name(), "batch": args.batch}
    with tempfile.TemporaryDirectory() as folder:
        tasks = [t for t in generate_tasks(Path(folder) / "bench", per_family=1) if t.family == "eco"]
        start = time.perf_counter()
        collect(tasks, Path(folder) / "rewards", workers=1, tools=["replace_background", "adjust_tone"])
        report["collect_seconds"] = round(time.perf_counter() - start, 1)
        for job in args.jobs:
            config_class = {"sft": SFTConfig, "dpo": DPOConfig}.get(job, GRPOConfig)
            extra = (
                {"num_generations": args.generations} if config_class is GRPOConfig else {"max_length": None}
            )
            training = config_class(
                output_dir=str(Path(folder) / job),
                max_steps=args.steps,
                per_device_train_batch_size=args.batch,
                logging_steps=1,
                report_to="none",
                save_strategy="no",
                use_cpu=on_cpu,
                bf16=not on_cpu,
                gradient_checkpointing=job == "grpo",  # train grpo --objective grpo requires it
                **extra,
            )
            model = ModelConfig(
                model_name_or_path=args.model,
                use_peft=True,
                lora_r=16,
                lora_alpha=32,
                lora_target_modules=["all-linear"],
            )
            table = str(Path(folder) / "rewards")
            if config_class is GRPOConfig:
                data = train_grpo.GRPOData(
                    table=table, split="all", objective=job, candidates=args.candidates
                )
                trainer = train_grpo.build_trainer(data, training, model)
                tokenizer = trainer.processing_class
                tokens = max(
                    len(tokenizer.encode(row["prompt"], add_special_tokens=False))
                    + sum(
                        len(tokenizer.encode(c, add_special_tokens=False))
                        for c in json.loads(row["candidates"])
                    )
                    * (job == "listwise")
                    for row in trainer.train_dataset
                )
            else:
                trainer = build_trainer(job, OrchestratorData(table=table, split="all"), training, model)
                column = "input_ids" if job == "sft" else "prompt_ids"
                tokens = max(len(row[column]) for row in trainer.train_dataset)
            start = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - start
            losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
            report[job] = {
                "rows": len(trainer.train_dataset),
                "max_tokens": tokens,
                "steps": trainer.state.global_step,
                "seconds_per_step": round(seconds / max(1, trainer.state.global_step), 2),
                "losses": [round(loss, 4) for loss in losses],
            }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
