"""LoRA adapters in the graph: an adapter trained a few steps with TRL on a tiny random Qwen2 loads through a
``local:<model>+<adapter>`` spec onto the shared base weights, its model variant decodes with it (the base
variant without), and bad adapter specs fail on one line."""

from __future__ import annotations

import pytest
import torch
from tiny_lm import tiny_causal_lm, tiny_tokenizer

from pixplan.graph.models import check_model_spec, load_chat_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-base")
    tiny_causal_lm().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def train_adapter(base_dir, out, seed: int):
    """A LoRA trained 3 steps of TRL's SFT on a few prompt-completion rows; its folder."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    rows = {
        "prompt": ["<|im_start|>user\nmake the background green<|im_end|>\n<|im_start|>assistant\n"] * 4,
        "completion": ['{"name": "recolor", "arguments": {"region": "r1"}}<|im_end|>'] * 4,
    }
    args = SFTConfig(
        output_dir=str(out),
        max_steps=3,
        per_device_train_batch_size=2,
        learning_rate=5e-2,
        max_length=None,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        seed=seed,
    )
    torch.manual_seed(seed)  # the LoRA's initialisation
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(base_dir),
        args=args,
        train_dataset=Dataset.from_dict(rows),
        processing_class=tiny_tokenizer(),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    trainer.train()
    trainer.save_model(str(out))
    return out


def served_logits(model, ids):
    """The next-token logits `model` decodes with: its adapter switched on as its calls do."""
    with model._lock, torch.no_grad():
        model._switch_adapter()
        return model.model(input_ids=ids).logits


def test_adapter_spec_loads_onto_shared_weights_and_changes_the_logits(tiny_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    first = train_adapter(tiny_dir, tmp_path / "planner", seed=1)
    second = train_adapter(tiny_dir, tmp_path / "orchestrator", seed=2)
    base = load_chat_model(f"local:{tiny_dir}")
    planner = load_chat_model(f"local:{tiny_dir}+{first}")
    orchestrator = load_chat_model(f"local:{tiny_dir}+{second}", temperature=0.5)
    assert planner.model is base.model is orchestrator.model  # the weights are loaded once
    assert base.adapter is None and planner.adapter != orchestrator.adapter
    assert planner.settings()["adapter"] == planner.adapter and planner.model_name.endswith(f"+{first}")
    assert load_chat_model(f"local:{tiny_dir}+{first}") is planner
    ids = torch.tensor([tiny_tokenizer().encode("make the background green")])
    with torch.no_grad():
        expected_base = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()(input_ids=ids).logits
        expected = {
            folder: PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), folder)
            .eval()(input_ids=ids)
            .logits
            for folder in (first, second)
        }
    # Each variant decodes with its own adapter (and the base with none), in any order of calls.
    for model, want in ((planner, expected[first]), (base, expected_base), (orchestrator, expected[second])):
        assert torch.allclose(served_logits(model, ids), want, atol=1e-5)
    assert torch.allclose(served_logits(planner, ids), expected[first], atol=1e-5)
    assert not torch.allclose(expected[first], expected_base, atol=1e-3)  # the training moved the output
    assert not base.model.training  # LoRA dropout is off when serving
    assert isinstance(planner.invoke("make the background green").content, str)


def test_bad_adapter_specs_fail_on_one_line(tiny_dir, tmp_path):
    with pytest.raises(ValueError, match=r"nor a folder with an adapter_config\.json"):
        load_chat_model(f"local:{tiny_dir}+{tmp_path / 'missing'}")
    with pytest.raises(ValueError, match=r"--orchestrator 'local:smollm2\+nowhere': adapter 'nowhere'"):
        check_model_spec("local:smollm2+nowhere", "--orchestrator")



def test_shipped_adapters_are_the_offline_defaults_and_untrained_turns_them_off():
    import json

    from pixplan.graph.cli import edit_settings
    from pixplan.graph.context import Context
    from pixplan.graph.models import DEFAULT_MODEL, SHIPPED_ADAPTERS, adapter_dir
    from pixplan.training.cli import build_parser
    from pixplan.training.eval_cli import _system

    for name in SHIPPED_ADAPTERS:
        config = json.loads((adapter_dir(name) / "adapter_config.json").read_text())
        assert config["peft_type"] == "LORA"
        assert (adapter_dir(name) / "adapter_model.safetensors").stat().st_size < 12_000_000
        check_model_spec(f"local:smollm2+{name}", name)
    context = Context()
    assert (context.planner_model, context.orchestrator_model) == (
        "local:smollm2+planner",
        "local:smollm2+orchestrator",
    )
    parser = build_parser()
    edit = ["edit", "a.png", "goal", "-o", "x.png"]
    assert edit_settings(parser.parse_args(edit)) == {}
    untrained = edit_settings(parser.parse_args([*edit, "--untrained", "--planner", "openai:m"]))
    assert untrained == {"planner_model": "openai:m", "orchestrator_model": DEFAULT_MODEL}
    # eval's summary always says which models (and adapters) ran.
    _, settings = _system(parser.parse_args(["eval", "--system", "llm"]))
    assert settings == {
        "planner": "local:smollm2+planner",
        "orchestrator": "local:smollm2+orchestrator",
        "hints": True,
        "replan_failed_step": Context().replan_failed_step,
    }
    argv = ["eval", "--system", "llm", "--untrained", "--no-hints", "--no-replan-failed-step"]
    _, settings = _system(parser.parse_args(argv))
    assert settings == {
        "planner": DEFAULT_MODEL, "orchestrator": DEFAULT_MODEL, "hints": False, "replan_failed_step": False
    }


@pytest.mark.slow
def test_shipped_adapters_load_onto_smollm2_and_change_its_logits():
    base = load_chat_model("local:smollm2")
    planner = load_chat_model("local:smollm2+planner")
    orchestrator = load_chat_model("local:smollm2+orchestrator")
    assert planner.model is base.model is orchestrator.model
    ids = torch.tensor([base.tokenizer.encode("Make this advertisement more eco-friendly")])
    logits = [served_logits(model, ids) for model in (base, planner, orchestrator)]
    assert not torch.allclose(logits[0], logits[1], atol=1e-3)
    assert not torch.allclose(logits[0], logits[2], atol=1e-3)
    assert torch.allclose(served_logits(base, ids), logits[0])  # and the base again has every adapter off
