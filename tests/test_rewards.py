"""Reward tables: candidate actions, rows and rewards against the metric judge, resumption without calls,
process pool and Ray, the TRL reward function, the CLI."""

from __future__ import annotations

import json
import shutil

import pytest
from graph_fakes import ScriptedChatModel, plan_message
from tiny_lm import tiny_tokenizer

from pixplan.graph.local.chat_format import format_completion
from pixplan.graph.metric_judge import MetricJudge, evaluate_checklist
from pixplan.graph.models import model_id
from pixplan.graph.schemas import JudgeFailure
from pixplan.tools.regions import load_catalog
from pixplan.tools.store import ImageStore
from pixplan.training import rewards
from pixplan.training.benchmark import generate_tasks
from pixplan.training.cli import main
from pixplan.training.reward_fn import TableReward
from pixplan.training.rewards import (
    CHECKLIST_PLAN,
    PRESETS,
    TOOL_REGIONS,
    Runner,
    best_first,
    candidate_actions,
    canonical_args,
    checklist_plan,
    collect,
    load_table,
    select_tools,
    step_text,
    task_rows,
)
from pixplan.training.tasks import prepare

FAMILIES = ("eco", "minimalist")
#: A few tools keep the tests fast; every rule they test holds for all tools.
TOOLS = ["replace_background", "replace_text", "remove_object", "adjust_tone"]


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    generated = generate_tasks(out, per_family=1, size=(384, 384))
    return [task for task in generated if task.family in FAMILIES]


@pytest.fixture(scope="module")
def table_dir(tasks, tmp_path_factory):
    out = tmp_path_factory.mktemp("rewards")
    summary = collect(tasks, out, workers=1, tools=TOOLS)
    assert summary["collected"] == 2 and summary["resumed"] == 0
    return out


def test_checklist_plan_groups_change_items_by_region(tasks):
    eco, minimalist = tasks
    plan = checklist_plan(eco)
    assert [step.serves for step in plan.steps] == [["c1", "c2"], ["c3"], ["c4"]]
    assert not {item for step in plan.steps for item in step.serves} & set(eco.keep)
    assert [step.serves for step in checklist_plan(minimalist).steps] == [["c1", "c2"], ["c3", "c4"]]
    assert step_text("a badge reading 'VEGAN' is added") == "VEGAN"
    assert step_text('Replace the slogan with "Good for the planet"') == "Good for the planet"
    assert step_text("a leaf icon is added") is None


def test_candidate_actions_take_only_the_regions_a_tool_accepts(tasks, store):
    eco = tasks[0]
    _, catalog = prepare(eco, store)
    kinds = {entry["id"]: entry["kind"] for entry in catalog["regions"]} | {"whole": "whole"}
    actions = candidate_actions([checklist_plan(eco)], catalog, select_tools(None))
    assert len({action.id for action in actions}) == len(actions)
    for action in actions:
        assert kinds[action.region] in TOOL_REGIONS[action.tool]
    texts = {action.args["text"] for action in actions if action.tool == "replace_text"}
    assert texts == {"eco"}  # the slogan step's first quoted word; no other step quotes text
    replaced = {action.region for action in actions if action.tool == "replace_text"}
    assert replaced == {entry["id"] for entry in catalog["regions"] if entry["kind"] == "text"}
    backgrounds = [action for action in actions if action.tool == "replace_background"]
    assert {action.preset for action in backgrounds} == set(PRESETS["replace_background"])
    assert {action.region for action in backgrounds} == {"r7"}
    # Arguments are complete (defaults filled in), so a call that spells a default out is the same action.
    assert backgrounds[0].args["angle"] == 90.0 and "image_id" not in backgrounds[0].args


def test_table_rows_and_rewards_match_the_metric_judge(tasks, table_dir):
    table = load_table(table_dir)
    rows = table.to_list()
    store = ImageStore(table_dir / "store")
    for task in tasks:
        task_rows = [row for row in rows if row["task_id"] == task.id]
        steps = checklist_plan(task).steps
        actions = {row["action_id"] for row in task_rows}
        assert len(task_rows) == len(actions) * len(steps)
        assert {row["plan"] for row in task_rows} == {CHECKLIST_PLAN}
        assert {row["tool"] for row in task_rows} == set(TOOLS)
        image, catalog = prepare(task, store)
        original = store.get(image["id"])
        base, _ = evaluate_checklist(task.checklist, original, original, catalog, store)
        base_passed = {item.id for item in base if item.passed}
        for row in task_rows[:: max(1, len(task_rows) // 12)]:  # a spread of rows, judged again here
            edited = store.get(row["image"]) if row["image"] else original
            items, _ = evaluate_checklist(task.checklist, original, edited, catalog, store)
            passed = {item.id for item in items if item.passed}
            assert set(row["passed"]) == passed
            broken = sum(item in base_passed and item not in passed for item in task.keep)
            expected = (len(passed & set(row["serves"])) - broken) / len(items)
            assert row["reward"] == pytest.approx(expected)
    # The table finds the intended edits: a background replacement is the best background step of the eco ad.
    eco = [row for row in rows if row["task_id"] == tasks[0].id and row["step_id"] == "s1"]
    best = max(eco, key=lambda row: row["reward"])
    assert best["tool"] == "replace_background" and best["reward"] > 0
    assert json.loads((table_dir / "collect.json").read_text())["tool_calls"] > 0


def test_rerun_makes_no_tool_or_judge_call(tasks, table_dir, tmp_path):
    again = collect(tasks, table_dir, workers=1, tools=TOOLS)
    assert again["resumed"] == 2 and again["tool_calls"] == 0 and again["judge_calls"] == 0
    # A task interrupted after its calls (its shard lost) is rebuilt from the caches alone, identically.
    shard = table_dir / "table" / f"{tasks[0].id}.parquet"
    before = load_table(table_dir).to_list()
    shard.unlink()
    rebuilt = collect(tasks[:1], table_dir, workers=1, tools=TOOLS)
    assert rebuilt["collected"] == 1 and rebuilt["tool_calls"] == 0 and rebuilt["judge_calls"] == 0
    assert load_table(table_dir).to_list() == before


def _rewards(folder):
    return sorted(
        (r["task_id"], r["step_id"], r["action_id"], r["reward"]) for r in load_table(folder).to_list()
    )


def test_process_pool_gives_the_same_table(tasks, table_dir, tmp_path):
    summary = collect(tasks, tmp_path / "pool", workers=2, tools=["replace_background", "remove_object"])
    assert summary["parallel"] == "2 processes" and summary["collected"] == 2
    expected = [row for row in _rewards(table_dir) if row[2] in {r[2] for r in _rewards(tmp_path / "pool")}]
    assert _rewards(tmp_path / "pool") == expected


@pytest.mark.network_local
@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_ray_gives_the_same_table(tasks, table_dir, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        summary = collect(tasks, tmp_path / "ray", ray_address="local", tools=["remove_object"])
    finally:
        ray.shutdown()
    assert summary["parallel"] == "ray" and summary["collected"] == 2
    expected = [row for row in _rewards(table_dir) if row[2] in {r[2] for r in _rewards(tmp_path / "ray")}]
    assert _rewards(tmp_path / "ray") == expected


def test_reward_function_looks_up_and_evaluates_unseen_actions(tasks, table_dir, tmp_path):
    folder = tmp_path / "table"
    shutil.copytree(table_dir, folder)
    reward = TableReward(folder)
    eco = tasks[0]
    rows = [
        row for row in load_table(folder).to_list() if row["task_id"] == eco.id and row["step_id"] == "s1"
    ]
    known = max(rows, key=lambda row: row["reward"])
    image_id = known["original_image"]

    def completion(name, **arguments):
        call = {
            "type": "function",
            "function": {"name": name, "arguments": {"image_id": image_id, **arguments}},
        }
        return [{"role": "assistant", "content": "", "tool_calls": [call]}]

    seen = completion(known["tool"], region=json.loads(known["region"]), **json.loads(known["args"]))
    # A new colour: not in the table, so it is applied and judged live (green passes the eco hue check).
    unseen = completion("replace_background", region="background", fill="solid", color="seagreen")
    runner = reward.runner
    values = reward(
        ["p"] * 4,
        [seen, unseen, completion("no_such_tool"), [{"role": "assistant", "content": "hi"}]],
        task_id=[eco.id] * 4,
        step_id=["s1"] * 4,
    )
    assert values[0] == known["reward"] and values[2:] == [-1.0, -1.0]
    assert reward.live == 1 and runner.tool_calls == 1 and runner.judge_calls == 1
    store = ImageStore(folder / "store")
    original = store.get(image_id)
    catalog = load_catalog(store, image_id)
    tool = runner.tools["replace_background"]
    args = canonical_args(tool, "background", {"fill": "solid", "color": "seagreen"})
    output = runner.apply(image_id, "replace_background", "background", args)["output"]  # from the cache
    assert runner.tool_calls == 1
    items, _ = evaluate_checklist(eco.checklist, original, store.get(output), catalog, store)
    passed = {item.id for item in items if item.passed}
    assert values[1] == pytest.approx(len(passed & {"c1", "c2"}) / len(items)) and values[1] > 0
    # Cached: a fresh reward function over the same folder makes no call for it either.
    fresh = TableReward(folder)
    assert fresh(["p"], [unseen], task_id=[eco.id], step_id=["s1"]) == [values[1]]
    assert fresh.runner.tool_calls == 0 and fresh.runner.judge_calls == 0
    # Text completions in the served format parse with the tokenizer they were made with.
    text = format_completion(tool_calls=[seen[0]["tool_calls"][0]["function"]])
    assert TableReward(folder, tokenizer=tiny_tokenizer())(
        ["p"], [text], task_id=[eco.id], step_id=["s1"]
    ) == [known["reward"]]
    with pytest.raises(KeyError, match="no step 's9'"):
        reward(["p"], [seen], task_id=[eco.id], step_id=["s9"])


def test_cli_collects_with_a_yaml_config(tasks, tmp_path, capsys):
    config = tmp_path / "collect.yaml"
    config.write_text(f"out: {tmp_path / 'cli'}\nsplit: all\ntools: [remove_object]\nworkers: 1\n")
    tasks_file = tasks[0].image.parent.parent / "tasks.jsonl"
    code = main(["train", "collect", "--config", str(config), "--tasks", str(tasks_file), "--family", "eco"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["collected"] == 1 and summary["tool_calls"] == summary["actions_per_task"]
    with pytest.raises(SystemExit, match=r"unknown tools \[.paint.\]"):
        main(
            ["train", "collect", "--tasks", str(tasks_file), "--out", str(tmp_path / "x"), "--tools", "paint"]
        )


def test_planner_plans_are_rewarded_on_their_own_items(tasks, tmp_path):
    eco = tasks[0]
    plan = {
        "checklist": [
            {
                "id": "c1",
                "text": "the background is green",
                "check": {
                    "type": "color_in_range",
                    "region": "background",
                    "stat": "hue",
                    "min": 75,
                    "max": 165,
                },
            },
            {
                "id": "c2",
                "text": "the slogan says eco",
                "check": {"type": "text_contains", "region": "r2", "any_of": ["eco"]},
            },
        ],
        "steps": [
            {"id": "s1", "instruction": "Make the background green.", "serves": ["c1"]},
            {"id": "s2", "instruction": "Replace the slogan with 'Eco choice'.", "serves": ["c2"]},
        ],
    }
    planner = ScriptedChatModel(responses=[plan_message(plan)] * 3)
    collect([eco], tmp_path, workers=1, planner=planner, tools=["replace_background", "replace_text"])
    rows = load_table(tmp_path).to_list()
    name = f"planner:{model_id(planner)}"
    assert {row["plan"] for row in rows} == {CHECKLIST_PLAN, name}
    planned = [row for row in rows if row["plan"] == name]
    assert {row["step_id"] for row in planned} == {"s1", "s2"}
    assert {tuple(row["serves"]) for row in planned} == {(f"{name}/c1",), (f"{name}/c2",)}
    # The planner's step text is a candidate: the slogan replaced with it passes the planner's own item.
    texts = {json.loads(row["args"])["text"] for row in rows if row["tool"] == "replace_text"}
    assert texts == {"eco", "Eco choice"}
    slogan = next(
        row
        for row in planned
        if row["step_id"] == "s2"
        and json.loads(row["args"]).get("text") == "Eco choice"
        and json.loads(row["region"]) == "r2"
    )
    assert f"{name}/c2" in slogan["passed"] and slogan["reward"] > 0
    assert max(row["reward"] for row in planned if row["step_id"] == "s1") > 0


class FailsOnEdits:
    """The metric judge on the original; a judge failure (as an LLM judge's refusal) on every edit."""

    name = "fails-on-edits"

    def judge(self, request):
        if request.after["id"] != request.original["id"]:
            return JudgeFailure(kind="refusal", message="no")
        return MetricJudge().judge(request)


def test_a_failed_judgement_is_no_reward_and_is_not_cached(tasks, tmp_path):
    runner = Runner.open(tmp_path, FailsOnEdits(), select_tools(["remove_object"]))
    rows, stats = task_rows(tasks[0], runner)
    assert rows and all(row["reward"] is None and row["judge_failure"] == "refusal: no" for row in rows)
    assert stats["judge_calls"] == stats["actions"] + 1
    _, again = task_rows(tasks[0], runner)
    assert again["tool_calls"] == 0 and again["judge_calls"] == stats["actions"]  # only the failures again


def test_ties_go_to_the_action_the_step_names_and_the_setting_turns_that_off(monkeypatch):
    def row(action_id, tool, preset, reward):
        instruction = "Add a leaf icon in the free space"
        return {"action_id": action_id, "tool": tool, "preset": preset, "reward": reward, "instruction": instruction}

    rows = [
        row("a1", "add_icon", "snowflake", 0.5),
        row("a2", "add_badge", "text:eco", 0.5),
        row("a3", "add_icon", "leaf", 0.5),
        row("a0", "recolor", "green", None),
        row("a4", "add_icon", "sun", 0.25),
    ]
    assert [r["action_id"] for r in best_first(rows)] == ["a3", "a1", "a2", "a4", "a0"]
    monkeypatch.setattr(rewards, "NAMED_TIES", False)
    assert [r["action_id"] for r in best_first(rows)] == ["a1", "a2", "a3", "a4", "a0"]
