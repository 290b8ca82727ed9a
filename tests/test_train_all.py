"""`pixplan train all` end to end on a tiny random Qwen2: collect (with a family held out), the orchestrator's SFT
and the planner's, each adapter trained and reported, the held-out family nowhere in what was learned from."""

from __future__ import annotations

import dataclasses
import json

import pytest
from safetensors.torch import load_file
from test_train_orchestrator import TOOLS_COLLECTED, tiny_dir  # noqa: F401  (module fixture, reused)

from pixplan.training.benchmark import generate_tasks
from pixplan.training.cli import main
from pixplan.training.tasks import load_tasks, save_tasks


@pytest.fixture(scope="module")
def train_tasks(tmp_path_factory):
    """The eco, winter and sale ads of the benchmark sample, marked as train tasks."""
    bench = tmp_path_factory.mktemp("bench")
    chosen = [t for t in generate_tasks(bench, per_family=1, size=(384, 384)) if t.family in {"eco", "winter", "sale"}]
    path = bench / "train.jsonl"
    save_tasks([dataclasses.replace(task, split="train") for task in chosen], path)
    return path


def _lora_b_nonzero(folder) -> bool:
    """LoRA's B matrices start at zero: any nonzero one means the adapter was trained."""
    weights = load_file(str(folder / "adapter_model.safetensors"))
    lora_b = [tensor for name, tensor in weights.items() if "lora_B" in name]
    return bool(lora_b) and any(tensor.abs().sum() > 0 for tensor in lora_b)


def test_train_all_collects_without_the_held_out_family_and_trains_both_adapters(
    train_tasks, tiny_dir, tmp_path, capsys  # noqa: F811
):
    out = tmp_path / "all"
    flags = ["--out", str(out), "--tasks", str(train_tasks), "--per_family", "1", "--hold_out", "winter"]
    flags += ["--workers", "1", "--tools", *TOOLS_COLLECTED, "--model_name_or_path", str(tiny_dir)]
    flags += ["--orchestrator_steps", "2", "--planner_steps", "2"]  # the YAMLs warm up for one step at lr 0
    assert main(["train", "all", *flags]) == 0
    summary = json.loads((out / "train_all.json").read_text())
    assert summary["tasks"] == 2 and summary["hold_out"] == ["winter"]
    assert set(summary["seconds"]) == {"collect", "orchestrator_sft", "planner_sft"}
    assert "shipped" not in summary  # --ship defaults to false: the repo's adapters are untouched
    collected = load_tasks(out / "rewards" / "tasks.jsonl")
    assert sorted(task.family for task in collected) == ["eco", "sale"]
    for name in ("orchestrator", "planner"):
        assert _lora_b_nonzero(out / name), name
    planner_report = json.loads((out / "planner" / "pixplan_planner.json").read_text())
    assert {row["family"] for row in planner_report["per_task"]} == {"eco", "sale"}
    orchestrator_report = json.loads((out / "orchestrator" / "pixplan_orchestrator.json").read_text())
    assert orchestrator_report["examples"] > 0


def test_train_all_rejects_an_unknown_family_and_an_empty_selection(train_tasks, tmp_path, capsys):
    flags = ["--out", str(tmp_path / "x"), "--tasks", str(train_tasks)]
    with pytest.raises(SystemExit, match=r"unknown families \['wintr'\]"):
        main(["train", "all", *flags, "--hold_out", "eco", "wintr"])
    with pytest.raises(SystemExit, match="no train task left"):
        main(["train", "all", *flags, "--hold_out", "eco", "winter", "sale"])
    # argparse would keep only the last of a repeated list flag, and hold out one family of three: refused.
    with pytest.raises(SystemExit, match="give --hold_out once"):
        main(["train", "all", *flags, "--hold_out", "eco", "--hold_out", "winter"])
    assert not (tmp_path / "x").exists()  # nothing collected, nothing lost
