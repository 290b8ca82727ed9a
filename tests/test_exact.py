"""`pixplan train exact`: every action sequence of small instances rolled out for real; correlations of the
additive reward with the exact one, top-1 agreement, call counts, the analytic costs, the CLI."""

from __future__ import annotations

import json

import pytest
from scipy.stats import kendalltau, spearmanr

from pixplan.graph.metric_judge import evaluate_checklist
from pixplan.tools.store import ImageStore
from pixplan.training.benchmark import generate_tasks
from pixplan.training.cli import main
from pixplan.training.exact import analytic_costs, run_exact
from pixplan.training.rewards import collect, load_table
from pixplan.training.systems import run_calls
from pixplan.training.tasks import load_tasks, prepare

TOOLS = ["replace_background", "replace_text", "remove_object"]


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory):
    bench = tmp_path_factory.mktemp("bench")
    tasks = [
        task
        for task in generate_tasks(bench, per_family=1, size=(384, 384))
        if task.family in ("eco", "sale")
    ]
    out = tmp_path_factory.mktemp("rewards")
    collect(tasks, out, workers=1, tools=TOOLS)
    return out


def test_exact_rolls_out_every_sequence_and_correlates(table_dir):
    report = run_exact(table_dir, per_step=2, max_steps=3, limit=2)
    summary, results = report["summary"], report["instances"]
    assert (
        summary["instances"] == 2 and json.loads((table_dir / "exact.json").read_text())["summary"] == summary
    )
    tasks = {task.id: task for task in load_tasks(table_dir / "tasks.jsonl")}
    store = ImageStore(table_dir / "store")
    rows = load_table(table_dir).to_list()
    for result in results:
        steps = result["steps"]
        assert steps == 3 and result["sequences"] == 2**steps
        assert result["exhaustive_judge_calls"] == 8 and result["exhaustive_tool_calls"] == 2 + 4 + 8
        assert result["additive_judge_calls"] == result["additive_tool_calls"] + 1
        detail = result["sequences_detail"]
        additive = [s["additive"] for s in detail]
        exact = [s["exact"] for s in detail]
        if result["spearman"] is not None:
            assert result["spearman"] == pytest.approx(spearmanr(additive, exact).statistic)
            assert result["kendall"] == pytest.approx(kendalltau(additive, exact).statistic)
        assert result["top1"] == (exact[additive.index(max(additive))] == max(exact))
        # The exact reward is a real rollout: replay the best sequence with the tools and judge it here.
        task = tasks[result["task_id"]]
        best = detail[additive.index(max(additive))]
        by_name = {
            f"{r['tool']}@{json.loads(r['region'])}:{r['preset']}": r for r in rows if r["task_id"] == task.id
        }
        calls = [
            {
                "tool": by_name[a]["tool"],
                "region": json.loads(by_name[a]["region"]),
                "args": json.loads(by_name[a]["args"]),
            }
            for a in best["actions"]
        ]
        image, catalog = prepare(task, store)
        final = run_calls(store, image, calls).image_id
        items, _ = evaluate_checklist(
            task.checklist, store.get(image["id"]), store.get(final), catalog, store
        )
        assert best["exact"] == pytest.approx(sum(item.passed for item in items) / len(items))
    # The best additive sequence of an eco ad with these tools is the intended edit: background, then slogan.
    eco = next(r for r in results if r["task_id"].startswith("eco"))
    assert eco["best_exact"] >= 5 / 7 and eco["top1"]
    # A rerun is served from the caches.
    again = run_exact(table_dir, per_step=2, max_steps=3, limit=2)
    assert [r["new_tool_calls"] + r["new_judge_calls"] for r in again["instances"]] == [0, 0]


def test_analytic_costs_reach_the_target_at_four_steps():
    assert analytic_costs(4, 10) == {
        "steps": 4,
        "actions": 10,
        "exhaustive": 10_000,
        "table": 41,
        "ratio": 243.9,
    }
    assert analytic_costs(4, 7)["ratio"] < 100 <= analytic_costs(4, 8)["ratio"]


def test_cli_exact_prints_the_table(table_dir, tmp_path, capsys):
    out = tmp_path / "exact.json"
    code = main(
        [
            "train",
            "exact",
            "--table",
            str(table_dir),
            "--per_step",
            "2",
            "--instances",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0 and out.exists()
    printed = capsys.readouterr().out
    assert "| instances | sequences | Spearman" in printed and "| 1 | 8 |" in printed
    with pytest.raises(SystemExit, match="max_steps >= 2"):
        main(["train", "exact", "--table", str(table_dir), "--max_steps", "1"])
