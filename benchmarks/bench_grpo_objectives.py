"""Which `pixplan train grpo` objective trains the orchestrator: listwise or GRPO, on held-out steps.

    .venv/bin/python benchmarks/bench_grpo_objectives.py --table runs/rewards --heldout 3 --steps 3

Takes a collected reward table; the steps of its last `--heldout` tasks are held out, the others train. Each
objective trains a fresh LoRA (r=16, all linear layers) on SmolLM2-135M-Instruct for `--steps` optimizer steps,
built exactly as `pixplan train grpo` builds it (`build_trainer`); before and after, every held-out step is
decoded as the orchestrate node serves it (greedy, constrained, hints on) and its call rewarded by the table
(`served_rewards`; calls the table lacks are judged live). Prints one JSON object: mean held-out reward before
and after, seconds per step, and the trainer's last logged metrics.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", required=True)
    parser.add_argument("--heldout", type=int, default=3, help="tasks held out (the table's last ones)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--objectives", nargs="+", default=["listwise", "grpo"], choices=["listwise", "grpo"])
    parser.add_argument("--batch", type=int, default=2, help="listwise: steps a batch")
    parser.add_argument("--generations", type=int, default=4, help="grpo: rollouts a batch, all of one step")
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--temperature", type=float, default=1.0, help="grpo: sampling temperature")
    parser.add_argument("--listwise-temperature", type=float, default=10.0)
    args = parser.parse_args()

    import torch
    from trl import GRPOConfig, ModelConfig

    from pixplan.training.reward_fn import TableReward
    from pixplan.training.train_grpo import GRPOData, build_trainer, served_rewards

    on_cpu = not torch.cuda.is_available()
    report: dict = {"device": "cpu" if on_cpu else torch.cuda.get_device_name(), "args": vars(args)}
    baseline = None
    for objective in args.objectives:
        training = GRPOConfig(
            output_dir=f"runs/bench-{objective}",
            max_steps=args.steps,
            per_device_train_batch_size=args.batch if objective == "listwise" else args.generations,
            num_generations=2 if objective == "listwise" else args.generations,  # listwise samples nothing
            learning_rate=args.learning_rate,
            temperature=args.temperature,
            lr_scheduler_type="constant",
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            use_cpu=on_cpu,
            bf16=not on_cpu,
            seed=0,
        )
        model = ModelConfig(use_peft=True, lora_r=16, lora_alpha=32, lora_target_modules=["all-linear"])
        data = GRPOData(
            table=args.table,
            split="all",
            objective=objective,
            candidates=args.candidates,
            listwise_temperature=args.listwise_temperature,
        )
        trainer = build_trainer(data, training, model)
        rows = trainer.train_dataset
        tasks = list(dict.fromkeys(rows["task_id"]))
        held = set(tasks[-args.heldout :])
        heldout = rows.select([i for i, task in enumerate(rows["task_id"]) if task in held])
        trainer.train_dataset = rows.select([i for i, task in enumerate(rows["task_id"]) if task not in held])
        reward = TableReward(args.table, tokenizer=trainer.processing_class)
        if baseline is None:  # the LoRA starts at zero: the base model, the same for every objective
            start = time.perf_counter()
            baseline = served_rewards(trainer.model, trainer.processing_class, heldout, reward)
            report["heldout"] = {
                "tasks": sorted(held),
                "steps": len(heldout),
                "train_steps": len(trainer.train_dataset),
                "best_in_table": _mean([max(r) for r in heldout["rewards"]]),
                "untrained": _mean(baseline),
                "seconds_per_served_step": round((time.perf_counter() - start) / len(heldout), 1),
            }
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        after = served_rewards(trainer.model, trainer.processing_class, heldout, reward)
        logged = [entry for entry in trainer.state.log_history if "loss" in entry]
        report[objective] = {
            "steps": trainer.state.global_step,
            "seconds_per_step": round(seconds / max(1, trainer.state.global_step), 1),
            "heldout_after": _mean(after),
            "gain": round(_mean(after) - _mean(baseline), 4),
            "changed_steps": sum(a != b for a, b in zip(after, baseline, strict=True)),
            "log": logged,
        }
        print(json.dumps({objective: report[objective]}), flush=True)
    print(json.dumps(report, indent=1))


def _mean(values: list) -> float:
    kept = [v for v in values if v is not None]
    return round(sum(kept) / max(1, len(kept)), 4)


if __name__ == "__main__":
    main()
