"""`pixplan eval`: run folders, summaries, resumption without model or judge calls, comparison, reports, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixplan.graph.metric_judge import MetricJudge
from pixplan.training.benchmark import generate_tasks
from pixplan.training.cli import main
from pixplan.training.evaluate import compare_runs, evaluate, load_run, markdown_table, merge_runs
from pixplan.training.systems import Outcome, oracle, rule_based
from pixplan.training.tasks import load_tasks

FAMILIES = ("eco", "sale")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    tasks = generate_tasks(out, per_family=1)
    return out, [task for task in tasks if task.family in FAMILIES]


class CountingJudge:
    """The metric judge, counting its calls."""

    name = "metric-counted"

    def __init__(self):
        self.calls = 0

    def judge(self, request):
        self.calls += 1
        return MetricJudge().judge(request)


def untouched(task, store, image):
    return Outcome(image_id=image["id"])


def test_run_folder_summary_and_report(bench, tmp_path):
    _, tasks = bench
    summary = evaluate(tasks, oracle, tmp_path / "run", system_name="oracle", progress=False)
    assert summary["system"] == "oracle" and summary["n_tasks"] == 2
    assert summary["mean_score"] == 1.0 and summary["pass_rate"] == 1.0
    assert set(summary["per_family"]) == set(FAMILIES)
    assert summary["model_calls"] == 0 and summary["seconds"] > 0
    for task in tasks:
        folder = tmp_path / "run" / "tasks" / task.id
        assert (folder / "final.png").exists()
        result = json.loads((folder / "result.json").read_text())
        assert [item["passed"] for item in result["items"]] == [True] * len(task.checklist)
        assert [step["tool"] for step in json.loads((folder / "trace.json").read_text())["steps"]] == [
            call["tool"] for call in task.ground_truth
        ]
    report = (tmp_path / "run" / "report.html").read_text()
    assert "plots/families.png" in report and all(task.id in report for task in tasks)
    assert (tmp_path / "run" / "plots" / "families.png").stat().st_size > 1000
    assert len(list((tmp_path / "run" / "thumbs").glob("*.jpg"))) == 4
    assert "| oracle | 2 | 1.000 | 1.000 |" in (tmp_path / "run" / "summary.md").read_text()


def test_rerun_makes_no_system_or_judge_call_and_resumes(bench, tmp_path):
    _, tasks = bench
    calls = []

    def counted(task, store, image):
        calls.append(task.id)
        return rule_based(task, store, image)

    judge = CountingJudge()
    first = evaluate(tasks, counted, tmp_path / "run", system_name="rule_based", judge=judge, progress=False)
    assert len(calls) == 2 and judge.calls == 2
    again = evaluate(tasks, counted, tmp_path / "run", system_name="rule_based", judge=judge, progress=False)
    assert len(calls) == 2 and judge.calls == 2  # everything cached
    assert again["this_run"] == {**again["this_run"], "evaluated": 0, "cached": 2, "judge_calls": 0}
    assert again["mean_score"] == first["mean_score"]
    # An interrupted run: one task's result is missing, so only that task runs again.
    (tmp_path / "run" / "tasks" / tasks[1].id / "result.json").unlink()
    evaluate(tasks, counted, tmp_path / "run", system_name="rule_based", judge=judge, progress=False)
    assert calls[2:] == [tasks[1].id] and judge.calls == 3


def test_compare_and_table(bench, tmp_path):
    _, tasks = bench
    a = evaluate(tasks, untouched, tmp_path / "a", system_name="untouched", progress=False)
    b = evaluate(tasks, oracle, tmp_path / "b", system_name="oracle", progress=False)
    assert a["mean_score"] < b["mean_score"]
    assert a["keep_items_passed"] == 1.0 and a["change_items_passed"] == 0.0
    text = compare_runs(tmp_path / "a", tmp_path / "b")
    assert "# oracle vs untouched" in text
    for family in FAMILIES:
        assert f"| {family} |" in text
    assert all(f"| {task.id} |" in text for task in tasks)
    table = markdown_table([a, b])
    assert table.index("| oracle |") < table.index("| untouched |")


def test_runs_split_over_tasks_merge_into_the_figures_of_one_run(bench, tmp_path, capsys):
    _, tasks = bench
    whole = evaluate(tasks, rule_based, tmp_path / "whole", system_name="rule_based", progress=False)
    evaluate(tasks[:1], rule_based, tmp_path / "a", system_name="rule_based", progress=False)
    evaluate(tasks[1:], rule_based, tmp_path / "b", system_name="rule_based", progress=False)
    merged = merge_runs([tmp_path / "a", tmp_path / "b"], system="rule_based")
    for key in ("n_tasks", "mean_score", "pass_rate", "change_items_passed", "keep_items_passed", "per_family"):
        assert merged[key] == whole[key], key
    with pytest.raises(ValueError, match="more than one of the runs"):
        merge_runs([tmp_path / "a", tmp_path / "whole"], system="rule_based")
    assert main(["eval", "table", str(tmp_path / "a"), str(tmp_path / "b"), "--merge", "both"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| both |")]
    assert len(rows) == 1
    assert rows[0].startswith(f"| both | {len(tasks)} | {whole['mean_score']:.3f} | {whole['pass_rate']:.3f} |")


def test_a_crashing_system_is_recorded_not_fatal(bench, tmp_path):
    _, tasks = bench

    def crashes(task, store, image):
        raise RuntimeError("model server down")

    summary = evaluate(tasks[:1], crashes, tmp_path / "run", system_name="broken", progress=False)
    assert summary["n_errors"] == 1
    _, results = load_run(tmp_path / "run")
    assert "model server down" in results[tasks[0].id]["error"]


def test_threads_give_the_same_scores(bench, tmp_path):
    _, tasks = bench
    serial = evaluate(tasks, rule_based, tmp_path / "serial", system_name="rule_based", progress=False)
    pooled = evaluate(
        tasks, rule_based, tmp_path / "pooled", system_name="rule_based", workers=2, progress=False
    )
    assert pooled["per_family"] == serial["per_family"]


def test_cli_eval_compare_and_generate(bench, tmp_path, capsys):
    out, _tasks = bench
    families = [arg for family in FAMILIES for arg in ("--family", family)]
    common = ["eval", "--tasks", str(out), "--split", "all", *families, "--quiet"]
    assert main([*common, "--system", "oracle", "--out", str(tmp_path / "oracle")]) == 0
    assert main([*common, "--system", "random", "--out", str(tmp_path / "random")]) == 0
    printed = capsys.readouterr().out
    assert "| oracle | 2 | 1.000 | 1.000 |" in printed and "report.html" in printed
    assert main(["eval", "compare", str(tmp_path / "random"), str(tmp_path / "oracle")]) == 0
    assert "# oracle vs random" in capsys.readouterr().out
    assert main(["eval", "table", str(tmp_path / "random"), str(tmp_path / "oracle")]) == 0
    assert capsys.readouterr().out.startswith("| system |")
    random_summary = json.loads((tmp_path / "random" / "summary.json").read_text())
    assert random_summary["settings"]["seed"] == 0


def test_cli_tasks_generate(tmp_path, capsys):
    assert (
        main(["tasks", "generate", "--out", str(tmp_path / "mine"), "--per-family", "1", "--size", "256x256"])
        == 0
    )
    assert "12 tasks" in capsys.readouterr().out
    tasks = load_tasks(tmp_path / "mine")
    assert len(tasks) == 12 and tasks[0].meta["spec"]["size"] == [256, 256]


def test_imgedit_tasks_judged_by_the_llm_judge(tmp_path):
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage

    from pixplan.graph.llm_judge import LLMJudge
    from pixplan.training.benchmarks_external import is_external, load_imgedit

    fixture = Path(__file__).parent / "fixtures" / "imgedit"
    assert is_external(fixture) and is_external(fixture / "basic_edit.json")
    tasks = load_imgedit(fixture)
    assert [(task.id, task.family) for task in tasks] == [("imgedit-1", "add"), ("imgedit-2", "background")]
    assert tasks[0].goal == "Add a red scarf around the cat's neck." and tasks[0].image.exists()
    assert all(item.check is None for task in tasks for item in task.checklist)
    verdict = {
        "reasons": ["nothing was added"],
        "instruction_adherence": 1,
        "plausibility": 9,
        "preservation": 10,
        "checklist": [
            {"id": "c1", "reason": "no scarf", "passed": False},
            {"id": "c2", "reason": "unchanged", "passed": True},
            {"id": "c3", "reason": "natural", "passed": True},
        ],
    }
    model = FakeMessagesListChatModel(responses=[AIMessage(content=json.dumps(verdict))] * 2)
    judge = LLMJudge(model, name="llm:fake")
    summary = evaluate(
        tasks, untouched, tmp_path / "run", system_name="untouched", judge=judge, progress=False
    )
    assert summary["judge"] == "llm:fake" and summary["n_tasks"] == 2
    assert summary["mean_score"] == pytest.approx(2 / 3, abs=1e-3) and summary["pass_rate"] == 0.0
    assert set(summary["per_family"]) == {"add", "background"}
    _, results = load_run(tmp_path / "run")
    assert results["imgedit-1"]["verdict"]["reasons"][-1] == "nothing was added"


def test_imgedit_format_errors_are_clear(tmp_path):
    from pixplan.training.benchmarks_external import load_imgedit

    (tmp_path / "basic_edit.json").write_text(json.dumps({"1": {"id": "a.jpg", "prompt": "x"}}))
    with pytest.raises(ValueError, match="edit_type"):
        load_imgedit(tmp_path)
    (tmp_path / "basic_edit.json").write_text(
        json.dumps({"1": {"id": "a.jpg", "prompt": "x", "edit_type": "add"}})
    )
    with pytest.raises(FileNotFoundError, match=r"a\.jpg"):
        load_imgedit(tmp_path)


def test_llm_system_runs_the_graph(bench, tmp_path):
    from functools import partial

    from graph_fakes import ECO_CALLS, ECO_PLAN, ScriptedChatModel, orchestrator_by_step, plan_message

    from pixplan.training.systems import llm

    _, tasks = bench
    eco = [task for task in tasks if task.family == "eco"]
    planner = ScriptedChatModel(responses=[plan_message(ECO_PLAN)] * 8)
    orchestrator = ScriptedChatModel(responses=[], respond=orchestrator_by_step(ECO_CALLS))
    system = partial(llm, planner=planner, orchestrator=orchestrator, max_replans=0)
    summary = evaluate(eco, system, tmp_path / "run", system_name="llm", progress=False)
    assert summary["model_calls"] >= 3
    _, results = load_run(tmp_path / "run")
    result = results[eco[0].id]
    assert result["error"] is None and result["final_id"] != result["original_id"]
    assert [step["tool"] for step in result["steps"]][:1] == ["replace_background"]
    trace = json.loads((tmp_path / "run" / "tasks" / eco[0].id / "trace.json").read_text())
    assert trace["plan"]["checklist"] and trace["usage"]
    hue = next(item for item in result["items"] if "hue" in item["reason"])
    assert hue["passed"], hue  # the scripted plan's green background meets the task's hue check
