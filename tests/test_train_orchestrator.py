"""Orchestrator training: examples rendered as the orchestrate node serves them, TRL SFT and DPO with a LoRA on
a tiny random Qwen2 (every LoRA parameter trained, a loss logged), the adapter saved and loaded back, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from langgraph.runtime import Runtime
from tiny_lm import tiny_causal_lm, tiny_local_model, tiny_tokenizer

from pixplan.graph.context import Context
from pixplan.graph.local.chat_format import parse_completion
from pixplan.graph.nodes import EditNodes
from pixplan.tools import TOOLS
from pixplan.tools.perception import describe_catalog
from pixplan.tools.store import ImageStore
from pixplan.training.benchmark import generate_tasks
from pixplan.training.cli import main
from pixplan.training.orchestrator_data import dpo_examples, render, sft_examples
from pixplan.training.rewards import CHECKLIST_PLAN, checklist_plan, collect, load_table
from pixplan.training.tasks import prepare
from pixplan.training.train_orchestrator import OrchestratorData, build_trainer, train

#: Two tools keep collection fast; the eco ad's background step is best served by replace_background.
TOOLS_COLLECTED = ["replace_background", "adjust_tone"]


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory):
    generated = generate_tasks(tmp_path_factory.mktemp("bench"), per_family=1, size=(384, 384))
    eco = [task for task in generated if task.family == "eco"]
    out = tmp_path_factory.mktemp("rewards")
    collect(eco, out, workers=1, tools=TOOLS_COLLECTED)
    return out


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-lm")
    tiny_causal_lm().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def configs(job, table_dir, tiny_dir, out, **overrides):
    from trl import DPOConfig, ModelConfig, SFTConfig

    config_class = SFTConfig if job == "sft" else DPOConfig
    training = config_class(
        output_dir=str(out),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        logging_steps=1,
        max_length=None,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        **overrides,
    )
    model = ModelConfig(
        model_name_or_path=str(tiny_dir),
        use_peft=True,
        lora_r=4,
        lora_alpha=8,
        lora_target_modules=["q_proj", "v_proj"],
    )
    return OrchestratorData(table=str(table_dir), split="all"), training, model


def test_training_prompt_is_what_the_orchestrate_node_serves(table_dir):
    examples = sft_examples(table_dir)
    table = load_table(table_dir)
    task_id = table[0]["task_id"]
    example = next(row for row in examples if row["task_id"] == task_id and row["step_id"] == "s1")
    # The node, run on the same step of the same task with a local model, decodes from exactly these tokens.
    store = ImageStore(table_dir / "store")
    from pixplan.training.tasks import load_tasks

    task = next(task for task in load_tasks(table_dir / "tasks.jsonl") if task.id == task_id)
    image, catalog = prepare(task, store)
    state = {
        "original": image,
        "current": image,
        "catalog_text": describe_catalog(catalog),
        "plan": checklist_plan(task).model_dump(),
        "plan_version": 1,
        "plans": [],
        "step_index": 0,
        "messages": [],
        "attempts": [],
    }
    model = tiny_local_model()
    runtime = Runtime(context=Context(store_dir=str(store.root)), stream_writer=lambda _: None)
    EditNodes(orchestrator=model, tools=TOOLS).orchestrate(state, runtime)
    served = list(model._prefix_cache()._entries)  # the prompt ids the decoder was fed
    tokenizer = tiny_tokenizer()
    rendered = render(tokenizer, example)
    assert served == [tuple(tokenizer.encode(rendered, add_special_tokens=False))]
    assert "Step s1:" in rendered and '"name": "replace_text"' in rendered
    # The completion is the best action of the step, parsed back by the served parser as that call.
    best = max(
        (row for row in table if row["step_id"] == "s1" and row["error"] is None), key=lambda r: r["reward"]
    )
    call = parse_completion(tokenizer, example["completion"])["tool_calls"][0]["function"]
    assert call["name"] == best["tool"] == "replace_background"
    assert call["arguments"] == {"region": json.loads(best["region"]), **json.loads(best["args"])}
    assert example["reward"] == best["reward"] > 0


def test_dpo_pairs_rank_the_best_action_over_worse_ones(table_dir):
    pairs = dpo_examples(table_dir, pairs_per_step=2)
    assert len(pairs) > 0
    assert all(row["reward"] > row["rejected_reward"] and row["chosen"] != row["rejected"] for row in pairs)
    assert all(isinstance(row["messages"], str) and isinstance(row["tools"], str) for row in pairs)
    steps = {(row["task_id"], row["step_id"]) for row in pairs}
    assert len(pairs) <= 2 * len(steps)
    assert {row["plan"] for row in pairs} == {CHECKLIST_PLAN}


@pytest.mark.parametrize("job", ["sft", "dpo"])
def test_trainer_runs_two_steps_and_trains_every_lora_parameter(job, table_dir, tiny_dir, tmp_path):
    trainer = build_trainer(job, *configs(job, table_dir, tiny_dir, tmp_path / job))
    tokenizer = trainer.processing_class
    rows = trainer.train_dataset
    # TRL tokenized the served prompt unchanged: the completion starts right after its tokens.
    first = sft_examples(table_dir) if job == "sft" else dpo_examples(table_dir)
    prompt_ids = tokenizer.encode(render(tokenizer, first[0]), add_special_tokens=False)
    if job == "sft":
        assert rows[0]["input_ids"][: len(prompt_ids)] == prompt_ids
        labels = rows[0]["labels"]
        assert labels[: len(prompt_ids)] == [-100] * len(prompt_ids) and labels[len(prompt_ids)] != -100
    else:
        assert rows[0]["prompt_ids"] == prompt_ids
    trained = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in name for name in trained)
    trainer.train()
    assert trainer.state.global_step == 2
    changed = {
        name: not torch.equal(before, dict(trainer.model.named_parameters())[name])
        for name, before in trained.items()
    }
    assert all(changed.values()), [name for name, moved in changed.items() if not moved]
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(loss == loss for loss in losses)  # logged, not NaN


def test_adapter_saves_and_loads_back_onto_the_base_model(table_dir, tiny_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "sft"
    trainer = train("sft", *configs("sft", table_dir, tiny_dir, out))
    assert json.loads((out / "pixplan_orchestrator.json").read_text())["job"] == "sft"
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), out).eval()
    ids = torch.tensor([trainer.train_dataset[0]["input_ids"][:64]])
    trained = trainer.model.eval()
    with torch.no_grad():
        expected = trained(input_ids=ids).logits
        assert torch.allclose(loaded(input_ids=ids).logits, expected, atol=1e-5)
        with loaded.disable_adapter():  # and the adapter is what differs from the base model
            assert not torch.allclose(loaded(input_ids=ids).logits, expected, atol=1e-5)


def test_cli_trains_from_yaml_and_rejects_bad_settings(table_dir, tiny_dir, tmp_path, capsys):
    out = tmp_path / "dpo"
    flags = [
        "--table",
        str(table_dir),
        "--split",
        "all",
        "--model_name_or_path",
        str(tiny_dir),
        "--output_dir",
        str(out),
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "2",
        "--lora_target_modules",
        "q_proj",
        "v_proj",
    ]
    assert main(["train", "dpo", "--config", "training/configs/dpo.yaml", *flags]) == 0
    assert (out / "adapter_model.safetensors").exists() and "loss" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="over max_length=32"):
        main(["train", "sft", "--config", "training/configs/sft.yaml", *flags, "--max_length", "32"])
    with pytest.raises(SystemExit, match="no reward table"):
        main(["train", "sft", "--config", "training/configs/sft.yaml", *flags, "--table", str(tmp_path)])
