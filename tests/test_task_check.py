"""`pixplan tasks check`: both calibrations on a sample of the bundled benchmark, on the example task of
docs/tasks.md (a layout of its own, drawn here), and on a folder of deliberately broken tasks.

The benchmark sample is `generate_tasks(per_family=1)`: the first task of each of the twelve families, with the
same seed and so the same images, catalogs and ground truth as in the bundled 300 (every layout occurs). The
whole bundled benchmark is what `pixplan tasks check` checks without a folder (several minutes, so not here).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import skimage.data
from PIL import Image, ImageDraw

from pixplan.tools.store import ImageStore
from pixplan.tools.text import load_font
from pixplan.training.benchmark import generate_tasks
from pixplan.training.cli import main
from pixplan.training.task_check import check_task
from pixplan.training.tasks import load_tasks

DOCS = Path(__file__).resolve().parents[1] / "docs" / "tasks.md"


def example_task() -> dict:
    """The example task of docs/tasks.md (the JSON block of its 'An example on a layout of your own')."""
    section = DOCS.read_text().split("### An example on a layout of your own", 1)[1]
    return json.loads(re.search(r"```json\n(.*?)\n```", section, re.DOTALL).group(1))


def draw_poster(path: Path) -> None:
    """The poster the example describes: 640 x 360, cream, a photo on the right, text left, a red ribbon."""
    width, height = 640, 360
    image = Image.new("RGB", (width, height), (243, 233, 210))
    photo = Image.fromarray(skimage.data.coffee()).convert("RGB").resize((280, 280))
    image.paste(photo, (round(0.53 * width) + 1, round(0.11 * height) + 1))
    draw = ImageDraw.Draw(image)
    draw.text(
        (0.27 * width, 0.18 * height), "FRESH ROAST", font=load_font(40), fill=(62, 39, 35), anchor="mm"
    )
    draw.text(
        (0.27 * width, 0.39 * height),
        "Small batch coffee",
        font=load_font(24),
        fill=(62, 39, 35),
        anchor="mm",
    )
    ribbon = [0.04 * width + 2, 0.72 * height + 2, 0.2 * width - 2, 0.88 * height - 2]
    draw.rectangle(ribbon, fill=(198, 40, 40))
    draw.text((0.12 * width, 0.8 * height), "NEW", font=load_font(26), fill=(255, 255, 255), anchor="mm")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def write_folder(folder: Path, records: list[dict]) -> Path:
    draw_poster(folder / "images" / "poster.png")
    (folder / "tasks.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    return folder


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    tasks = generate_tasks(out, per_family=1)
    assert {task.meta["spec"]["layout"] for task in tasks} == {"left", "right", "top", "bottom"}
    return out


def test_the_bundled_benchmark_sample_passes_both_calibrations(sample, capsys):
    assert main(["tasks", "check", str(sample)]) == 0
    out = capsys.readouterr().out
    assert "12 tasks: the untouched image fails every change item" in out


def test_the_docs_example_on_its_own_layout_passes(tmp_path, capsys):
    folder = write_folder(tmp_path / "mine", [example_task()])
    (task,) = load_tasks(folder)
    problems, notes = check_task(task, ImageStore(tmp_path / "store"))
    assert problems == [] and notes == []
    assert main(["tasks", "check", str(folder)]) == 0


def test_broken_tasks_are_reported_item_by_item(tmp_path, capsys):
    good = example_task()
    already = json.loads(json.dumps(good))
    already["id"] = "poster-already"
    already["checklist"][1]["check"]["any_of"] = ["coffee", "winter"]  # "Small batch coffee" has it already
    missed = json.loads(json.dumps(good))
    missed["id"] = "poster-missed"
    missed["ground_truth"][1]["args"]["text"] = "Warm cups"  # the slogan never says winter
    covered = json.loads(json.dumps(good))
    covered["id"] = "poster-covered"
    covered["ground_truth"][2]["region"] = [0.6, 0.3, 0.85, 0.7]  # the icon lands on the photo
    failing = json.loads(json.dumps(good))
    failing["id"] = "poster-failing"
    failing["ground_truth"][0]["args"]["fill"] = "plaid"
    folder = write_folder(tmp_path / "broken", [good, already, missed, covered, failing])
    assert main(["tasks", "check", str(folder)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(
        line.startswith("poster-already c2 (untouched): a change item already passes") for line in lines
    )
    assert any(
        line.startswith("poster-missed c2 (ground truth): fails after the ground truth") for line in lines
    )
    assert any(line.startswith("poster-covered c4 (ground truth)") for line in lines)
    assert any(line.startswith("poster-covered c3 (ground truth)") for line in lines)
    assert any(
        line.startswith("poster-failing - (ground truth): call 1 (replace_background) failed")
        for line in lines
    )
    assert not any(line.startswith("poster-winter ") for line in lines)
    assert lines[-1].startswith("4 of 5 tasks break a calibration: poster-already, poster-missed")


def test_a_task_without_ground_truth_gets_the_untouched_calibration_only(tmp_path):
    record = example_task()
    del record["ground_truth"]
    (task,) = load_tasks(write_folder(tmp_path / "mine", [record]))
    problems, notes = check_task(task, ImageStore(tmp_path / "store"))
    assert problems == []
    assert notes == ["poster-winter: no ground_truth, so the ground-truth calibration is skipped"]
