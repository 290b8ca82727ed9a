"""`pixplan train sft|dpo`: the orchestrator fine-tuned with TRL (SFTTrainer, DPOTrainer) and a LoRA from a
reward table, on prompts rendered as the graph serves them (`training/orchestrator_data.py`).

The settings are three dataclasses parsed together by TRL's `TrlParser`: `OrchestratorData` (which table and
which examples), TRL's `SFTConfig` or `DPOConfig`, and TRL's `ModelConfig` (base model and LoRA). The base model
is the local SmolLM2-135M-Instruct folder (`graph.models.smollm2_dir()`, the dequantised GGUF the graph serves)
unless `--model_name_or_path` names another causal LM folder. The adapter and tokenizer are written to
`--output_dir`.

    pixplan train sft --config training/configs/sft.yaml --table runs/rewards
    pixplan train dpo --config training/configs/dpo.yaml --table runs/rewards

On CPU (no CUDA) `use_cpu=True` and `bf16=False` are the defaults (TRL's bf16 default fails there) and are
forced for the run, with float32 weights. A row longer than
`max_length` is an error, not a silent truncation (TRL's default of 1024 is shorter than an orchestrator prompt;
the YAML files set `max_length: null`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixplan.training.orchestrator_data import dpo_examples, render, sft_examples


@dataclass
class OrchestratorData:
    """Which reward table trains the orchestrator, and which of its examples."""

    table: str = field(default="runs/rewards", metadata={"help": "Folder of a collected reward table."})
    split: str = field(
        default="train", metadata={"help": "Tasks of this split only: train, val, test or all."}
    )
    min_reward: float = field(
        default=0.0, metadata={"help": "SFT: only steps whose best action earns more than this."}
    )
    pairs_per_step: int = field(
        default=2, metadata={"help": "DPO: pairs of best versus worse actions per step."}
    )
    min_margin: float = field(
        default=0.0,
        metadata={"help": "DPO: a rejected action's reward is lower than the best by more than this."},
    )
    init_adapter: str | None = field(
        default=None,
        metadata={
            "help": "SFT: go on training this LoRA ('orchestrator': the shipped one, or an adapter folder) instead "
            "of a new one, e.g. on a newer table; its own r and modules are kept."
        },
    )


def load_base(model_args: Any, on_cpu: bool):
    """The base causal LM and its tokenizer with pixplan's chat template (`prepare_tokenizer`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pixplan.graph.local.chat_format import prepare_tokenizer
    from pixplan.graph.models import smollm2_dir

    path = model_args.model_name_or_path or str(smollm2_dir())
    if not Path(path).is_dir():
        raise SystemExit(f"pixplan train: --model_name_or_path {path} is not a model folder")
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(path))
    dtype = (
        torch.float32 if on_cpu or model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    )
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return model, tokenizer


def warm_start(model: Any, init_adapter: str, command: str):
    """The base model with a trained LoRA loaded trainable (peft's `PeftModel`), to go on training it: the
    trainer then gets no `peft_config`, so the adapter keeps its own rank and target modules."""
    from peft import PeftModel

    from pixplan.graph.models import adapter_dir

    try:
        folder = adapter_dir(init_adapter)
    except ValueError as error:
        raise SystemExit(f"{command}: --init_adapter: {error}") from None
    return PeftModel.from_pretrained(model, str(folder), is_trainable=True)


def training_dataset(job: str, data: OrchestratorData, tokenizer: Any):
    """The job's TRL dataset: standard (text) prompt-completion or preference rows, the prompt rendered by the
    tokenizer's chat template from the example's messages and tools."""
    from datasets import Dataset

    split = None if data.split == "all" else data.split
    if job == "sft":
        examples = sft_examples(data.table, min_reward=data.min_reward, split=split)
        columns = ("completion",)
    else:
        examples = dpo_examples(
            data.table, pairs_per_step=data.pairs_per_step, min_margin=data.min_margin, split=split
        )
        columns = ("chosen", "rejected")
    rows = {"prompt": [render(tokenizer, example) for example in examples]}
    return Dataset.from_dict(rows | {name: examples[name] for name in columns})


def check_length(dataset: Any, tokenizer: Any, max_length: int | None) -> None:
    if max_length is None:
        return
    longest = max(
        len(tokenizer.encode(row["prompt"] + row[name], add_special_tokens=False))
        for row in dataset
        for name in ("completion", "chosen", "rejected")
        if name in row
    )
    if longest > max_length:
        raise SystemExit(
            f"pixplan train: a row has {longest} tokens, over max_length={max_length}; TRL would truncate it "
            "(set --max_length null or larger)"
        )


def build_trainer(job: str, data: OrchestratorData, training_args: Any, model_args: Any):
    """TRL's SFT or DPO trainer with a LoRA (`ModelConfig`'s) on the table's examples, ready to train."""
    import torch
    from trl import DPOTrainer, SFTTrainer, get_peft_config

    if job not in ("sft", "dpo"):
        raise ValueError(f"unknown training job {job!r}: sft or dpo")
    if not model_args.use_peft:
        raise SystemExit("pixplan train: the orchestrator is trained as a LoRA: set use_peft: true")
    if data.split not in ("train", "val", "test", "all"):
        raise SystemExit(f"pixplan train: --split must be train, val, test or all, not {data.split!r}")
    if data.pairs_per_step < 1:
        raise SystemExit("pixplan train: --pairs_per_step must be at least 1")
    if data.init_adapter and job != "sft":
        # TRL 1.16's DPO reference for a PEFT model is the base with the adapter disabled, not the warm start.
        raise SystemExit("pixplan train dpo: --init_adapter is for sft only (DPO's reference would be the base)")
    on_cpu = not torch.cuda.is_available()
    if on_cpu:
        training_args.use_cpu, training_args.bf16, training_args.fp16 = True, False, False
    model, tokenizer = load_base(model_args, on_cpu)
    try:
        dataset = training_dataset(job, data, tokenizer)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"pixplan train {job}: {error}") from None
    check_length(dataset, tokenizer, training_args.max_length)
    peft_config = get_peft_config(model_args)
    if data.init_adapter:
        model, peft_config = warm_start(model, data.init_adapter, f"pixplan train {job}"), None
    trainer_class = SFTTrainer if job == "sft" else DPOTrainer
    return trainer_class(
        model=model,
        args=training_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def train(job: str, data: OrchestratorData, training_args: Any, model_args: Any):
    """Train (`build_trainer`) and save the adapter and tokenizer to `output_dir`; returns the trainer."""
    trainer = build_trainer(job, data, training_args, model_args)
    trainer.train()
    trainer.save_model(training_args.output_dir)
    info = {
        "job": job,
        "table": data.table,
        "split": data.split,
        "examples": len(trainer.train_dataset),
        "init_adapter": data.init_adapter,
    }
    Path(training_args.output_dir, "pixplan_orchestrator.json").write_text(json.dumps(info, indent=1))
    return trainer


def parse(job: str, argv: list[str]):
    import torch
    from trl import DPOConfig, ModelConfig, SFTConfig, TrlParser

    config_class = SFTConfig if job == "sft" else DPOConfig
    parser = TrlParser((OrchestratorData, config_class, ModelConfig), prog=f"pixplan train {job}")
    if not torch.cuda.is_available():  # TRL's bf16 default fails on CPU as soon as the config is built
        parser.set_defaults(use_cpu=True, bf16=False)
    return parser.parse_args_and_config(argv)[:3]


def run_sft(args: argparse.Namespace) -> int:
    trainer = train("sft", *parse("sft", args.rest))
    print(json.dumps(trainer.state.log_history[-1]))
    return 0


def run_dpo(args: argparse.Namespace) -> int:
    trainer = train("dpo", *parse("dpo", args.rest))
    print(json.dumps(trainer.state.log_history[-1]))
    return 0
