"""`pixplan train grpo`: the orchestrator trained towards a reward table's rewards, every completion a valid call.

Each example is one plan step of the table (`orchestrator_data.grpo_examples`): the prompt the orchestrate node
serves, the step's candidate actions with their rewards, and the choices the node's local model decodes among
(`graph.model_inputs.decoding_options`). Two objectives, chosen with `--objective`:

- ``listwise`` (the default): the exact expected reward of the step under the model, over the table's candidate
  actions of that step. All candidates are scored in one packed forward pass (the prompt once, each candidate
  seeing the prompt and itself, as the decoder scores options); p = softmax(log-likelihood / listwise_temperature)
  and the loss is -sum(p * A), A the step's rewards standardised. No sampling: no variance, no invalid call, no
  tool or judge call while training. Whole calls' log-likelihoods differ by tens of nats (measured on SmolLM2:
  -64 to -141 over one step's 16 candidates), so at temperature 1 p is one-hot and the gradient vanishes; the
  default temperature of 10 spreads p over the few likeliest candidates.
- ``grpo``: TRL's `GRPOTrainer` with its rollouts decoded by pixplan's constrained decoder (TRL's
  `rollout_func`, `ConstrainedRollout`): `LocalChatModel` on the policy being trained, sampled at `temperature`
  among the node's choices, so every completion is a valid tool call. Rewards come from `TableReward`: a call
  the table has not seen (a sampled colour, a free text) is applied and judged live, then cached.

Why listwise is the default, with the measurement: README, "Learning: orchestrator training".

    pixplan train grpo --config training/configs/grpo.yaml --table runs/rewards
    pixplan train grpo --config training/configs/grpo.yaml --table runs/rewards --objective grpo

Settings: `GRPOData`, TRL's `GRPOConfig` (both objectives: learning rate, steps, batch, `temperature`,
`scale_rewards`, logging; ``grpo`` also `num_generations`, `beta`, `loss_type`) and `ModelConfig` (base model and
LoRA), parsed by `TrlParser`. The base model loads as for SFT and DPO (`train_orchestrator.load_base`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixplan.graph.local.chat_format import format_completion
from pixplan.training.orchestrator_data import grpo_examples, render
from pixplan.training.train_orchestrator import load_base

OBJECTIVES = ("listwise", "grpo")


@dataclass
class GRPOData:
    """Which reward table trains the orchestrator, with which objective."""

    table: str = field(default="runs/rewards", metadata={"help": "Folder of a collected reward table."})
    split: str = field(
        default="train", metadata={"help": "Tasks of this split only: train, val, test or all."}
    )
    objective: str = field(
        default="listwise",
        metadata={"help": "listwise (exact expected reward over the table's actions) or grpo (TRL's GRPO)."},
    )
    candidates: int | None = field(
        default=16,
        metadata={"help": "listwise: candidate actions per step, spread over the ranks (null: all of them)."},
    )
    listwise_temperature: float = field(
        default=10.0,
        metadata={"help": "listwise: softmax temperature over the candidates' summed log-likelihoods."},
    )
    judge: str = field(
        default="metric",
        metadata={"help": "grpo: the judge of actions the table has not seen (as collect's)."},
    )
    hints: bool = field(
        default=True, metadata={"help": "grpo: rollouts decode with the step's words as hints, as served."}
    )


def examples(data: GRPOData, tokenizer: Any):
    """The table's steps as a TRL dataset: the rendered `prompt` beside `grpo_examples`' columns."""
    split = None if data.split == "all" else data.split
    rows = grpo_examples(data.table, candidates=data.candidates, split=split)
    return rows.add_column("prompt", [render(tokenizer, row) for row in rows])


def _bound(chat: Any, row: dict[str, Any], hints: bool):
    return chat.bind_tools(json.loads(row["tools"]), **json.loads(row["options"]), hints=hints)


def _policy(model: Any) -> Any:
    """The causal LM under a peft wrapper (its LoRA layers are in place), as `LocalChatModel` drives it."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class ConstrainedRollout:
    """TRL's `rollout_func`: each prompt's completion decoded by `LocalChatModel` on the policy being trained.

    TRL calls it with this process's prompts, each already repeated `num_generations` times by its sampler, and
    the trainer; it returns one completion per prompt: ``prompt_ids``, ``completion_ids`` (the call written by
    `format_completion` and tokenized whole, as SFT and DPO tokenize theirs) and ``logprobs`` None (TRL reads
    them only for vLLM's importance sampling). One `LocalChatModel` per call: its prefix cache shares a prompt's
    KV state among its generations and must not outlive a weight update.
    """

    def __init__(self, rows: Any, *, hints: bool = True, seed: int = 0):
        self.rows = {row["prompt"]: row for row in rows}
        self.hints = hints
        self.seed = seed
        self.calls = 0

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, Any]:
        from pixplan.graph.local.chat_model import LocalChatModel

        tokenizer = trainer.processing_class
        policy = _policy(trainer.accelerator.unwrap_model(trainer.model))
        chat = LocalChatModel(
            model=policy,
            tokenizer=tokenizer,
            temperature=trainer.args.temperature,
            prefix_cache_size=len(set(prompts)),
            switch_adapters=False,  # decode with the LoRA being trained, and leave it trainable
        )
        training, self.calls = policy.training, self.calls + 1
        policy.eval()
        prompt_ids, completion_ids = [], []
        try:
            for i, prompt in enumerate(prompts):
                row = self.rows[prompt]
                seed = self.seed * 1_000_003 + self.calls * 1_009 + i
                message = _bound(chat, row, self.hints).invoke(json.loads(row["messages"]), seed=seed)
                completion = format_completion(tool_calls=message.tool_calls)
                prompt_ids.append(tokenizer.encode(prompt, add_special_tokens=False))
                completion_ids.append(tokenizer.encode(completion, add_special_tokens=False))
        finally:
            policy.train(training)
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}


def packed_scores(model: Any, prompt_ids: list[int], candidates: list[list[int]]):
    """Log-likelihood of each candidate completion after the prompt, in one forward pass with gradients.

    The sequence is the prompt then every candidate; a block attention mask lets each candidate see the prompt
    and its own earlier tokens, and each starts at the position after the prompt (as `ConstrainedDecoder.scores`
    packs options). Only the logits that predict candidate tokens are computed.
    """
    import torch

    n = len(prompt_ids)
    total = n + sum(len(ids) for ids in candidates)
    mask = torch.zeros(1, 1, total, total, dtype=torch.bool)
    mask[0, 0, :n, :n] = torch.ones(n, n, dtype=torch.bool).tril()
    positions, starts, start = list(range(n)), [], n
    for ids in candidates:
        size = len(ids)
        mask[0, 0, start : start + size, :n] = True
        mask[0, 0, start : start + size, start : start + size] = torch.ones(
            size, size, dtype=torch.bool
        ).tril()
        positions += range(n, n + size)
        starts.append(start)
        start += size
    device = next(model.parameters()).device
    flat = [*prompt_ids, *(t for ids in candidates for t in ids)]
    keep = torch.arange(n - 1, total, device=device)  # row 0: after the prompt; row k: after position n-1+k
    logits = (
        model(
            input_ids=torch.tensor([flat], device=device),
            attention_mask=mask.to(device),
            position_ids=torch.tensor([positions], device=device),
            logits_to_keep=keep,
        )
        .logits[0]
        .float()
    )
    rows, targets = [], []
    for ids, begin in zip(candidates, starts, strict=True):
        rows += [0, *range(begin - n + 1, begin - n + len(ids))]
        targets += ids
    rows_t, targets_t = torch.tensor(rows, device=device), torch.tensor(targets, device=device)
    picked = logits[rows_t, targets_t] - torch.logsumexp(logits[rows_t], dim=-1)
    owner = torch.repeat_interleave(
        torch.arange(len(candidates), device=device),
        torch.tensor([len(ids) for ids in candidates], device=device),
    )
    return torch.zeros(len(candidates), device=device, dtype=picked.dtype).index_add(0, owner, picked)


def listwise_trainer_class():
    """`ListwiseTrainer`, built on first use (transformers is imported only then)."""
    import torch
    from transformers import Trainer

    class ListwiseTrainer(Trainer):
        """The exact expected reward over each step's candidate actions (module docstring), on a `Trainer`:
        TRL's config, optimiser, schedule, accelerate and logging. Logs the expected reward, the reward of the
        model's most likely candidate and the probability of the best one."""

        def __init__(self, *args: Any, temperature: float, **kwargs: Any):
            super().__init__(*args, data_collator=lambda rows: rows, **kwargs)
            self.temperature = temperature
            self.model_accepts_loss_kwargs = False  # the Trainer scales the loss for gradient accumulation
            self._metrics: dict[str, list[float]] = {}

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            losses = []
            for row in inputs:
                scores = packed_scores(model, row["prompt_ids"], row["candidate_ids"])
                rewards = torch.tensor(row["rewards"], device=scores.device, dtype=scores.dtype)
                probs = torch.softmax(scores / self.temperature, dim=0)
                advantages = rewards - rewards.mean()
                if self.args.scale_rewards != "none":
                    advantages = advantages / (rewards.std() + 1e-4)
                losses.append(-(probs * advantages).sum())
                with torch.no_grad():
                    entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
                    for key, value in (
                        ("reward", (probs * rewards).sum()),
                        ("reward_of_argmax", rewards[scores.argmax()]),
                        ("best_reward", rewards.max()),
                        ("prob_of_best", probs[rewards == rewards.max()].sum()),
                        ("entropy", entropy),
                    ):
                        self._metrics.setdefault(key, []).append(float(value))
            loss = torch.stack(losses).mean()
            return (loss, {"loss": loss}) if return_outputs else loss

        def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            if self._metrics and "loss" in logs:
                logs = {**logs, **{k: sum(v) / len(v) for k, v in self._metrics.items()}}
                self._metrics = {}
            super().log(logs, *args, **kwargs)

    return ListwiseTrainer


def build_trainer(data: GRPOData, training_args: Any, model_args: Any):
    """The objective's trainer with a LoRA (`ModelConfig`'s) on the table's steps, ready to train."""
    import torch
    from trl import GRPOTrainer, get_peft_config

    from pixplan.training.reward_fn import TableReward

    if data.listwise_temperature <= 0:
        raise SystemExit("pixplan train grpo: --listwise_temperature must be above 0")
    if data.objective not in OBJECTIVES:
        raise SystemExit(f"pixplan train grpo: --objective must be listwise or grpo, not {data.objective!r}")
    if not model_args.use_peft:
        raise SystemExit("pixplan train grpo: the orchestrator is trained as a LoRA: set use_peft: true")
    if data.split not in ("train", "val", "test", "all"):
        raise SystemExit(f"pixplan train grpo: --split must be train, val, test or all, not {data.split!r}")
    on_cpu = not torch.cuda.is_available()
    if on_cpu:
        training_args.use_cpu, training_args.bf16, training_args.fp16 = True, False, False
    model, tokenizer = load_base(model_args, on_cpu)
    try:
        dataset = examples(data, tokenizer)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"pixplan train grpo: {error}") from None
    peft_config = get_peft_config(model_args)
    if data.objective == "listwise":
        from peft import get_peft_model

        def tokenize(row: dict[str, Any]) -> dict[str, Any]:
            return {
                "prompt_ids": tokenizer.encode(row["prompt"], add_special_tokens=False),
                "candidate_ids": [
                    tokenizer.encode(text, add_special_tokens=False) for text in json.loads(row["candidates"])
                ],
            }

        training_args.remove_unused_columns = False
        return listwise_trainer_class()(
            model=get_peft_model(model, peft_config),
            args=training_args,
            train_dataset=dataset.map(tokenize),
            processing_class=tokenizer,
            temperature=data.listwise_temperature,
        )
    if (
        not training_args.gradient_checkpointing
    ):  # measured: TRL's loss then has no gradient here (not understood)
        raise SystemExit("pixplan train grpo: --objective grpo needs gradient_checkpointing: true")
    reward = TableReward(data.table, judge=data.judge, tokenizer=tokenizer)
    return GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=training_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        rollout_func=ConstrainedRollout(dataset, hints=data.hints, seed=training_args.seed),
    )


def served_rewards(model: Any, tokenizer: Any, rows: Any, reward: Any, *, hints: bool = True) -> list[float]:
    """The reward of the call the graph would serve for each step (greedy, constrained, as the orchestrate node
    decodes it), by `TableReward` (unseen calls judged live): how a trained model is measured."""
    from pixplan.graph.local.chat_model import LocalChatModel

    policy = _policy(model)
    training = policy.training
    policy.eval()
    chat = LocalChatModel(model=policy, tokenizer=tokenizer, prefix_cache_size=0, switch_adapters=False)
    try:
        values = []
        for row in rows:
            message = _bound(chat, row, hints).invoke(json.loads(row["messages"]))
            completion = [{"role": "assistant", "tool_calls": message.tool_calls}]
            values.append(reward.reward(completion, row["task_id"], row["step_id"], row["plan"]))
        return values
    finally:
        policy.train(training)


def train(data: GRPOData, training_args: Any, model_args: Any):
    """Train (`build_trainer`) and save the adapter and tokenizer to `output_dir`; returns the trainer."""
    trainer = build_trainer(data, training_args, model_args)
    trainer.train()
    trainer.save_model(training_args.output_dir)
    info = {
        "job": "grpo",
        "objective": data.objective,
        "table": data.table,
        "split": data.split,
        "examples": len(trainer.train_dataset),
    }
    Path(training_args.output_dir, "pixplan_orchestrator.json").write_text(json.dumps(info, indent=1))
    return trainer


def parse(argv: list[str]):
    import torch
    from trl import GRPOConfig, ModelConfig, TrlParser

    parser = TrlParser((GRPOData, GRPOConfig, ModelConfig), prog="pixplan train grpo")
    if not torch.cuda.is_available():  # TRL's bf16 default fails on CPU as soon as the config is built
        parser.set_defaults(use_cpu=True, bf16=False)
    return parser.parse_args_and_config(argv)[:3]


def run_grpo(args: argparse.Namespace) -> int:
    trainer = train(*parse(args.rest))
    print(json.dumps(trainer.state.log_history[-1]))
    return 0
