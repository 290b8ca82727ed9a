"""Public image-editing benchmarks as pixplan tasks, for users who have the data (nothing is downloaded).

Supported: **ImgEdit-Bench** (Ye et al., 2025), single-turn "basic" suite. Its layout:

    Benchmark/
      basic_edit.json            {"<key>": {"id": "<image path under singleturn/>", "prompt": "...",
                                            "edit_type": "add|remove|replace|adjust|background|style|..."}, ...}
      singleturn/<id>            the source images

Each record becomes a task whose goal is the instruction and whose family is the edit type. Such tasks have no
typed checks (what "add a hat to the dog" means cannot be verified on pixels without a model), so they are
judged by the LLM judge:

    pixplan eval --tasks path/to/Benchmark --system llm --judge openai:gpt-4.1 --out runs/imgedit
"""

from __future__ import annotations

import json
from pathlib import Path

from pixplan.graph.checks import ChecklistItem
from pixplan.training.tasks import Task

IMGEDIT_FILE = "basic_edit.json"


def is_external(path: Path) -> bool:
    """Whether `path` is an ImgEdit-Bench folder or its `basic_edit.json`."""
    return (path.is_dir() and (path / IMGEDIT_FILE).exists()) or (
        path.is_file() and path.name == IMGEDIT_FILE
    )


def load_imgedit(path: str | Path, image_root: str | Path | None = None) -> list[Task]:
    """ImgEdit-Bench basic tasks from its folder (or `basic_edit.json`); images under `singleturn/`."""
    path = Path(path)
    annotations = path / IMGEDIT_FILE if path.is_dir() else path
    root = Path(image_root) if image_root is not None else annotations.parent / "singleturn"
    records = json.loads(annotations.read_text())
    if not isinstance(records, dict):
        raise ValueError(
            f"{annotations}: expected an object of records keyed by id, as ImgEdit's basic_edit.json"
        )
    tasks = []
    for key, record in records.items():
        missing = {"id", "prompt", "edit_type"} - set(record)
        if missing:
            raise ValueError(f"{annotations}: record {key!r} lacks {sorted(missing)}")
        image = root / record["id"]
        if not image.exists():
            raise FileNotFoundError(f"{annotations}: record {key!r}: no image at {image}")
        instruction = record["prompt"].strip()
        tasks.append(
            Task(
                id=f"imgedit-{key}",
                family=str(record["edit_type"]),
                split="test",
                goal=instruction,
                image=image,
                checklist=[
                    ChecklistItem(id="c1", text=f"The edit does what was asked: {instruction}"),
                    ChecklistItem(
                        id="c2",
                        text="Everything the instruction does not mention stays as in the original image",
                    ),
                    ChecklistItem(id="c3", text="The result looks natural, without visible artefacts"),
                ],
                keep=["c2"],
                meta={"benchmark": "ImgEdit", "key": key, "image_id": record["id"]},
            )
        )
    return tasks


def load_external(path: Path) -> list[Task]:
    """Tasks from any supported external benchmark at `path`."""
    if is_external(path):
        return load_imgedit(path)
    raise ValueError(f"{path}: not a supported external benchmark (expected ImgEdit's {IMGEDIT_FILE})")
