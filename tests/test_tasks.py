"""The benchmark generator and the metric judge's calibration on it.

Calibration, on a sample of tasks across goal families, with the real tools: the oracle (the task's ground truth)
passes every item; the untouched ad fails every change item and passes every keep item; a destructive edit
fails every keep item.
"""

from __future__ import annotations

import json
import re

import pytest

from pixplan.graph.metric_judge import evaluate_checklist
from pixplan.tools import TOOLS
from pixplan.tools.store import ImageStore
from pixplan.training.ads import write_example
from pixplan.training.benchmark import (
    DEFAULT_PER_FAMILY,
    assign_splits,
    file_digest,
    generate_tasks,
)
from pixplan.training.families import FAMILIES
from pixplan.training.systems import family_of, oracle, run_calls
from pixplan.training.tasks import load_tasks, prepare

#: Digest of `generate_tasks(per_family=1)`: any change to the generator's output changes it. When a change is
#: intended, bump BENCHMARK_VERSION in benchmark.py and update this value.
DIGEST_ONE_PER_FAMILY = "47759fed653c7991434b88cf959f8320294c285e308efbd594bf806a905a26e7"

CALIBRATION_FAMILIES = ["eco", "winter", "minimalist", "sale"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return out, generate_tasks(out, per_family=1)


def test_twelve_families_with_typed_checklists(generated):
    _out, tasks = generated
    assert len(FAMILIES) == 12
    assert [task.family for task in tasks] == list(FAMILIES)
    for task in tasks:
        assert task.checklist and all(item.check is not None for item in task.checklist)
        assert task.keep and set(task.keep) < {item.id for item in task.checklist}
        assert task.ground_truth and task.catalog is not None
        assert task.image.exists() and task.background_mask.exists()
    assert len({task.goal for task in tasks}) == len(tasks)  # one phrasing per family, none shared


def test_every_family_is_complete():
    """Each family of the table has everything the generator and the baselines read, and it is consistent:
    its keywords name it in every goal phrasing, its slogans pass its slogan check, its badge shows the words
    its check reads, and its recipe and style call real tools with valid arguments."""
    tools = {tool.name: tool for tool in TOOLS}
    styles = tools["stylize"].tool_call_schema.model_json_schema()["properties"]["style"]["enum"]
    for name, family in FAMILIES.items():
        assert family.name == name and len(family.goals) >= 3 and family.background and family.gradients
        assert all(family_of(goal) is family for goal in family.goals), name
        assert bool(family.words) == bool(family.slogans), name
        for slogan in family.slogans:
            assert any(word in slogan.lower() for word in family.words), (name, slogan)
        for check in family.background:
            assert check.stat in ("hue", "saturation", "brightness", "warmth") and check.text, name
        if family.element is None:
            assert family.recipe.remove_badge, name
        elif family.element.tool == "add_badge":
            assert family.element.text and family.element.words, name
            assert all(word in family.element.text.lower() for word in family.element.words), name
        else:
            assert family.element.icon, name
        steps = [family.recipe.background, *([family.recipe.corner] if family.recipe.corner else [])]
        for tool_name, args in steps:
            tools[tool_name].tool_call_schema.model_validate(
                {"image_id": "0" * 24, "region": "whole", **args}
            )
        assert family.style is None or family.style in styles, name


def test_round_trip_and_splits(generated):
    out, tasks = generated
    loaded = load_tasks(out)
    assert [task.to_json(out) for task in loaded] == [task.to_json(out) for task in tasks]
    assert load_tasks(out / "tasks.jsonl", "test") == [task for task in loaded if task.split == "test"]
    line = json.loads((out / "tasks.jsonl").read_text().splitlines()[0])
    assert not line["image"].startswith("/")  # relative paths: the folder can move


def test_splits_are_fixed_per_family():
    for family in FAMILIES:
        splits = assign_splits(family, DEFAULT_PER_FAMILY)
        assert splits == assign_splits(family, DEFAULT_PER_FAMILY)
        assert splits.count("test") == 4 and splits.count("val") == 4 and splits.count("train") == 17
    assert assign_splits("eco", 25) != assign_splits("eco", 25, seed=1)
    assert len(FAMILIES) * DEFAULT_PER_FAMILY >= 300


def test_generation_is_deterministic(generated, tmp_path):
    out, _ = generated
    again = tmp_path / "again"
    generate_tasks(again, per_family=1)
    assert file_digest(again) == file_digest(out) == DIGEST_ONE_PER_FAMILY


def test_example_ad_is_small(tmp_path):
    path = write_example(tmp_path / "ad.png")
    assert path.stat().st_size < 1_000_000


def _calibration_tasks(generated):
    _out, tasks = generated
    return [task for task in tasks if task.family in CALIBRATION_FAMILIES]


def test_oracle_passes_every_item(generated, tmp_path):
    store = ImageStore(tmp_path / "store")
    for task in _calibration_tasks(generated):
        image, catalog = prepare(task, store)
        outcome = oracle(task, store, image)
        assert not [step["error"] for step in outcome.steps if "error" in step]
        items, unverifiable = evaluate_checklist(
            task.checklist, store.get(image["id"]), store.get(outcome.image_id), catalog, store
        )
        assert not unverifiable
        failed = [(item.id, item.reason) for item in items if not item.passed]
        assert not failed, f"{task.id}: {failed}"


def test_untouched_fails_change_items_and_keeps_the_rest(generated, tmp_path):
    store = ImageStore(tmp_path / "store")
    for task in _calibration_tasks(generated):
        image, catalog = prepare(task, store)
        original = store.get(image["id"])
        items, _ = evaluate_checklist(task.checklist, original, original, catalog, store)
        for item in items:
            assert item.passed == (item.id in task.keep), f"{task.id} {item.id}: {item.reason}"


def test_destructive_edit_fails_every_keep_item(generated, tmp_path):
    store = ImageStore(tmp_path / "store")
    for task in _calibration_tasks(generated)[:3]:
        image, catalog = prepare(task, store)
        wrecked = run_calls(store, image, [{"tool": "blur", "region": "whole", "args": {"radius": 20.0}}])
        items, _ = evaluate_checklist(
            task.checklist, store.get(image["id"]), store.get(wrecked.image_id), catalog, store
        )
        for item in items:
            if item.id in task.keep:
                assert not item.passed, f"{task.id} {item.id}: {item.reason}"


def _record(**changes):
    record = {
        "id": "t1",
        "goal": "Make it green",
        "image": "a.png",
        "checklist": [
            {
                "id": "c1",
                "text": "slogan",
                "check": {"type": "text_contains", "region": "r2", "any_of": ["eco"]},
            }
        ],
        "catalog": {
            "width": 64,
            "height": 64,
            "regions": [
                {"id": "r2", "box": [0.1, 0.1, 0.9, 0.3], "kind": "text", "label": "slogan"},
                {"id": "r3", "box": [0.2, 0.4, 0.8, 0.9], "kind": "object", "label": "product"},
            ],
        },
    }
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: r["catalog"]["regions"][0].update(id="slogan"),
            "catalog region id 'slogan' must be 'r' and digits",
        ),
        (
            lambda r: r["catalog"]["regions"][0].update(id="R2"),
            "catalog region id 'R2' must be 'r' and digits",
        ),
        (lambda r: r["catalog"]["regions"][1].update(id="r2"), "catalog region id 'r2' is declared twice"),
        (lambda r: r["catalog"]["regions"][1].update(kind="photo"), "catalog region r3: kind must be text, object"),
        (
            lambda r: r["catalog"]["regions"][1].update(box=[0.8, 0.4, 0.2, 0.9]),
            "catalog region r3: box is empty or inverted",
        ),
        (
            lambda r: r.update(background_mask="bg.png"),
            "background_mask is applied to the catalog's region of kind",
        ),
        (
            lambda r: r["checklist"][0]["check"].update(region="r9"),
            "checklist item c1: region 'r9' is not in the catalog",
        ),
        (
            lambda r: r.update(ground_truth=[{"tool": "recolor", "region": "slogan", "args": {}}]),
            "ground truth call 1 (recolor): unknown region 'slogan'",
        ),
        (
            lambda r: (
                r["catalog"]["regions"].pop(1) and r["checklist"][0]["check"].update(region="background")
            ),
            "checklist item c1: 'background' needs a catalog region of kind 'background'",
        ),
    ],
)
def test_loading_refuses_what_would_silently_misbehave(tmp_path, change, message):
    record = _record()
    change(record)
    (tmp_path / "tasks.jsonl").write_text(json.dumps(_record()) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"tasks.jsonl:2: invalid task: {message}")):
        load_tasks(tmp_path)
    (tmp_path / "tasks.jsonl").write_text(json.dumps(_record()) + "\n")
    assert [task.id for task in load_tasks(tmp_path)] == ["t1"]


def test_a_background_mask_with_a_background_region_loads(tmp_path):
    record = _record(background_mask="bg.png")
    record["catalog"]["regions"].append(
        {"id": "r7", "box": [0, 0, 1, 1], "kind": "background", "label": "bg"}
    )
    (tmp_path / "tasks.jsonl").write_text(json.dumps(record) + "\n")
    (task,) = load_tasks(tmp_path)
    assert task.background_mask == tmp_path / "bg.png"
