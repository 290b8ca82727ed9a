"""Planner training: plans scored against a task's checklist by the reward table's best action per step (no new
tool or judge call), pruned, checklist targets that the plan node can serve, prompts rendered exactly as the plan
node serves them, TRL SFT of the planner's LoRA on a tiny random Qwen2 and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from langgraph.runtime import Runtime
from test_train_orchestrator import configs, table_dir, tiny_dir  # noqa: F401  (module fixtures, reused)
from tiny_lm import tiny_local_model, tiny_tokenizer

from pixplan.graph.context import Context
from pixplan.graph.local.chat_format import render_prompt
from pixplan.graph.models import load_chat_model
from pixplan.graph.nodes import EditNodes
from pixplan.graph.schemas import Plan, Step
from pixplan.tools import TOOLS
from pixplan.training.cli import main
from pixplan.training.planner_data import (
    checklist_target,
    load_rewards,
    plan_completion,
    plan_coverage,
    plan_errors,
    prune,
    served_messages,
)
from pixplan.training.rewards import checklist_plan
from pixplan.training.train_planner import PlannerData, ship_adapter, train


@pytest.fixture(scope="module")
def rewards(table_dir):  # noqa: F811
    return load_rewards(table_dir)[0]


def test_coverage_counts_what_each_steps_best_action_passes_and_prune_drops_the_rest(rewards):
    task = rewards.task
    background = [i.id for i in task.checklist if i.check and i.check.region == "background"]
    product = next(i.check.region for i in task.checklist if i.check and i.check.type == "preserved")
    plan = Plan(
        checklist=task.checklist,
        steps=[
            Step(id="s1", instruction="darken the product photo", serves=background, tool="blur"),
            Step(id="s2", instruction="make the background green", serves=background, tool="replace_background"),
            Step(id="s3", instruction=f"retone {product} only", serves=background[:1], tool="adjust_tone"),
        ],
    )
    coverage = plan_coverage(plan, rewards)
    gains = {step["id"]: step["gain"] for step in coverage["steps"]}
    # No blur action was collected; retoning only the product breaks the keep item; the background step gains.
    assert gains["s1"] == 0 and gains["s3"] <= 0 < gains["s2"]
    assert set(coverage["covered"]) <= set(background) and coverage["covered"]
    assert coverage["score"] == len(coverage["covered"]) / len(rewards.change_ids)
    pruned = prune(plan, coverage)
    assert [step.id for step in pruned.steps] == ["s1"] and pruned.steps[0].tool == "replace_background"
    assert plan_coverage(pruned, rewards)["score"] == coverage["score"]


def test_checklist_target_is_a_valid_plan_written_as_its_best_actions(rewards):
    target = checklist_target(rewards, checklist_plan(rewards.task))
    assert not plan_errors(target, rewards)
    assert plan_coverage(target, rewards)["score"] > 0
    assert [step.id for step in target.steps] == [f"s{i}" for i in range(1, len(target.steps) + 1)]
    assert len(target.checklist) <= 5 and all(len(step.instruction) <= 120 for step in target.steps)
    step = target.steps[0]
    best = max(rewards.actions, key=lambda a: len(rewards.gain(a)[0]) - len(rewards.gain(a)[1]))
    assert step.tool == best["tool"] == "replace_background" and "background" in step.instruction
    colour = json.loads(best["args"])["color"]
    assert colour in step.instruction  # the words the orchestrator's hints read
    # The completion is the plan as the decoder writes it, and parses back to the same plan.
    completion = plan_completion(target)
    assert completion.endswith("<|im_end|>")
    assert Plan.model_validate_json(completion.removesuffix("<|im_end|>")) == target


def test_training_prompt_is_what_the_plan_node_serves(rewards):
    model = tiny_local_model(max_retries=0)
    state = {
        "goal": rewards.task.goal,
        "original": rewards.image,
        "current": rewards.image,
        "catalog_text": rewards.catalog_text,
        "plan_version": 0,
    }
    context = Context(store_dir=str(rewards.store.root), num_plan_candidates=1, max_plan_attempts=1)
    EditNodes(planner=model, tools=TOOLS).plan(state, Runtime(context=context, stream_writer=lambda _: None))
    served = list(model._prefix_cache()._entries)  # the prompt ids the decoder was fed
    tokenizer = tiny_tokenizer()
    rendered = render_prompt(tokenizer, served_messages(rewards))
    assert served == [tuple(tokenizer.encode(rendered, add_special_tokens=False))]
    assert rewards.task.goal in rendered and "Answer with one JSON object: Plan" in rendered


def test_training_runs_two_steps_moves_every_lora_and_loads_into_the_graph(table_dir, tiny_dir, tmp_path):  # noqa: F811
    from safetensors.torch import load_file
    from trl import ModelConfig, SFTConfig

    out = tmp_path / "planner"
    data = PlannerData(table=str(table_dir), split="all", targets="checklist", samples=1, planner=f"local:{tiny_dir}")
    training = SFTConfig(
        output_dir=str(out),
        max_steps=2,
        per_device_train_batch_size=1,
        learning_rate=1e-2,
        logging_steps=1,
        max_length=None,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
    )
    model_args = ModelConfig(
        model_name_or_path=str(tiny_dir), use_peft=True, lora_r=4, lora_alpha=8, lora_target_modules=["q_proj", "v_proj"]
    )
    trainer, report = train(data, training, model_args)
    assert trainer.state.global_step == 2
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(loss == loss for loss in losses)
    # The labels are the plan: the prompt is masked, the completion trained.
    row = trainer.train_dataset[0]
    assert -100 in row["labels"] and row["labels"][-1] != -100
    # lora_B starts at zero: every one of them moved.
    weights = load_file(out / "adapter_model.safetensors")
    lora_b = [name for name in weights if "lora_B" in name]
    assert lora_b and all(torch.count_nonzero(weights[name]) > 0 for name in lora_b)
    entry = report["per_task"][0]
    assert entry["samples"] == 1 and entry["checklist_coverage"] > 0 and report["examples"] == 1
    assert json.loads((out / "pixplan_planner.json").read_text())["examples"] == 1
    planner = load_chat_model(f"local:{tiny_dir}+{out}")
    assert planner.adapter is not None


def test_cli_reports_without_training_and_rejects_bad_settings(table_dir, tmp_path, capsys):  # noqa: F811
    flags = ["--table", str(table_dir), "--split", "all", "--output_dir", str(tmp_path / "p")]
    assert main(["train", "planner", "--config", "training/configs/planner.yaml", *flags, "--report_only", "true"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["examples"] == 1 and printed["mean_checklist_coverage"] > 0
    with pytest.raises(SystemExit, match="--targets is 'samples' or 'checklist'"):
        main(["train", "planner", "--config", "training/configs/planner.yaml", *flags, "--targets", "mine"])
    with pytest.raises(SystemExit, match="--samples must be at least 1"):
        main(["train", "planner", "--config", "training/configs/planner.yaml", *flags, "--targets", "samples"])


@pytest.mark.parametrize("trained", ["planner", "orchestrator"])
def test_training_goes_on_from_a_trained_adapter_keeping_its_shape(trained, table_dir, tiny_dir, tmp_path):  # noqa: F811
    from safetensors.torch import load_file

    from pixplan.training import train_orchestrator

    def run(out, learning_rate, init_adapter=None, lora_r=4, job="sft"):
        orchestrator_data, training, model_args = configs(job, table_dir, tiny_dir, out)
        training.learning_rate = learning_rate
        model_args.lora_r, model_args.lora_alpha = lora_r, 2 * lora_r
        if trained == "planner":
            data = PlannerData(table=str(table_dir), split="all", targets="checklist", init_adapter=init_adapter)
            train(data, training, model_args)
        else:
            orchestrator_data.init_adapter = init_adapter
            train_orchestrator.train(job, orchestrator_data, training, model_args)
        return load_file(out / "adapter_model.safetensors")

    first = run(tmp_path / "first", 1e-2)
    # A tiny learning rate from the first adapter: its weights, moved a little; its r, not the config's.
    then = run(tmp_path / "then", 1e-5, init_adapter=str(tmp_path / "first"), lora_r=8)
    assert set(then) == set(first)
    for name, value in first.items():
        assert then[name].shape == value.shape
        assert torch.allclose(then[name], value, atol=1e-3)
    record = "pixplan_planner.json" if trained == "planner" else "pixplan_orchestrator.json"
    assert json.loads((tmp_path / "then" / record).read_text())["init_adapter"] == str(tmp_path / "first")
    # Shipped: float16 weights, and a record that names this machine's folders without their paths.
    shipped = ship_adapter(tmp_path / "then", trained, adapters_dir=tmp_path / "adapters")
    half = load_file(shipped / "adapter_model.safetensors")
    assert all(half[name].dtype == torch.float16 for name in then)
    assert all(torch.allclose(half[name].float(), then[name].float(), atol=1e-3) for name in then)
    shipped_record = json.loads((shipped / record).read_text())
    assert shipped_record["init_adapter"] == "first" and shipped_record["table"] == table_dir.name
    assert "per_task" not in shipped_record
    assert any(not torch.equal(then[name], first[name]) for name in first)
    with pytest.raises(SystemExit, match="--init_adapter: adapter 'nowhere'"):
        run(tmp_path / "bad", 1e-2, init_adapter="nowhere")
    if trained == "orchestrator":
        with pytest.raises(SystemExit, match="--init_adapter is for sft only"):
            run(tmp_path / "dpo", 1e-2, init_adapter=str(tmp_path / "first"), job="dpo")
