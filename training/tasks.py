"""Tasks: the format of an abstract-goal editing task, and reading and writing task folders.

A task is an image, a goal, a checklist of natural-language requirements (each with a typed pixel check,
`pixplan.graph.checks`), and optionally its region catalog and ground truth (the intended tool calls). A task
folder is `tasks.jsonl` (one JSON object per task) with the images beside it; the format is documented in
`docs/tasks.md`, where users add tasks of their own. The bundled benchmark (`pixplan.training.benchmark`) is
written in it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixplan.graph.checks import ChecklistItem
from pixplan.tools.regions import (
    RegionCatalog,
    RegionError,
    parse_region,
    save_catalog,
    validate_box,
)
from pixplan.tools.store import ImageRef, ImageStore, open_image


@dataclass(kw_only=True)
class Task:
    """One benchmark task: an image, a goal, a checklist, and optionally a catalog and the ground truth.

    `keep` lists the checklist items that ask for something to stay (product, logo, headline); the others ask
    for a change. `ground_truth` is a list of tool calls ``{"tool", "region", "args"}`` that meets the goal.
    """

    id: str
    goal: str
    image: Path
    checklist: list[ChecklistItem]
    family: str = "custom"
    split: str = "test"
    keep: list[str] = field(default_factory=list)
    catalog: dict[str, Any] | None = None  # {"width", "height", "regions": [...]}, ids as in the checks
    background_mask: Path | None = None  # white where the background is; the catalog's 'background'
    ground_truth: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self, root: Path) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "family": self.family,
            "split": self.split,
            "goal": self.goal,
            "image": _relative(self.image, root),
            "checklist": [
                {**item.model_dump(exclude_none=True), **({"keep": True} if item.id in self.keep else {})}
                for item in self.checklist
            ],
        }
        if self.catalog is not None:
            record["catalog"] = self.catalog
        if self.background_mask is not None:
            record["background_mask"] = _relative(self.background_mask, root)
        if self.ground_truth:
            record["ground_truth"] = self.ground_truth
        if self.meta:
            record["meta"] = self.meta
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any], root: Path) -> Task:
        """A task from its JSON record (images relative to `root`); raises `ValueError` saying what is wrong."""
        items = record["checklist"]
        task = cls(
            id=str(record["id"]),
            goal=record["goal"],
            image=root / record["image"],
            checklist=[ChecklistItem.model_validate(item) for item in items],
            family=record.get("family", "custom"),
            split=record.get("split", "test"),
            keep=[item["id"] for item in items if item.get("keep")],
            catalog=record.get("catalog"),
            background_mask=root / record["background_mask"] if record.get("background_mask") else None,
            ground_truth=record.get("ground_truth", []),
            meta=record.get("meta", {}),
        )
        task.validate()
        return task

    def validate(self) -> None:
        """Check what the format leaves to the writer: catalog ids are `r<digits>` and unique, kinds and boxes
        are valid, every region a check or a ground-truth call names exists, and a `background_mask` has the
        catalog `background` region it is applied to. Raises `ValueError` with the first problem."""
        regions = (self.catalog or {}).get("regions", [])
        if self.catalog is not None and not isinstance(regions, list):
            raise ValueError("catalog.regions must be a list of regions")
        ids: list[str] = []
        for entry in regions:
            region_id = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(region_id, str) or not _is_catalog_id(region_id):
                raise ValueError(
                    f"catalog region id {region_id!r} must be 'r' and digits (r1, r2, ...): "
                    "tools and checks read any other name as something else"
                )
            if region_id in ids:
                raise ValueError(f"catalog region id {region_id!r} is declared twice")
            if entry.get("kind") not in ("text", "object", "background", "whole"):
                raise ValueError(
                    f"catalog region {region_id}: kind must be text, object, background or whole, "
                    f"got {entry.get('kind')!r}"
                )
            try:
                validate_box(entry.get("box"))
            except RegionError as error:
                raise ValueError(f"catalog region {region_id}: {error}") from None
            ids.append(region_id)
        kinds = {entry["kind"] for entry in regions}
        if self.background_mask is not None and "background" not in kinds:
            raise ValueError(
                "background_mask is applied to the catalog's region of kind 'background', and the catalog "
                'has none: add one (e.g. {"id": "r9", "box": [0, 0, 1, 1], "kind": "background", '
                '"label": "background"})'
            )
        named = [(f"checklist item {item.id}", item.check.region) for item in self.checklist if item.check]
        named += [
            (f"ground truth call {n} ({call.get('tool')})", call.get("region"))
            for n, call in enumerate(self.ground_truth, 1)
        ]
        for where, region in named:
            try:
                parsed = parse_region(region)
            except RegionError as error:
                raise ValueError(f"{where}: {error}") from None
            if parsed.kind == "catalog" and parsed.catalog_id not in ids:
                known = ", ".join(ids) or "none (the task has no catalog)"
                raise ValueError(f"{where}: region {region!r} is not in the catalog (it has: {known})")
            if parsed.kind == "background" and "background" not in kinds and "object" not in kinds:
                raise ValueError(
                    f"{where}: 'background' needs a catalog region of kind 'background' (with a "
                    "background_mask) or of kind 'object' (the background is everything else)"
                )


def _is_catalog_id(name: str) -> bool:
    """Whether tools and checks read `name` as a catalog id (as `regions.parse_region` does: 'r' and digits)."""
    try:
        parsed = parse_region(name)
    except RegionError:
        return False
    return parsed.kind == "catalog" and parsed.catalog_id == name


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def load_tasks(path: str | os.PathLike[str], split: str | None = None) -> list[Task]:
    """Tasks from a `tasks.jsonl` file (or a folder holding one); relative image paths are beside it."""
    path = Path(path)
    if path.is_dir():
        path = path / "tasks.jsonl"
    tasks = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            tasks.append(Task.from_json(json.loads(line), path.parent))
        except (ValueError, KeyError) as error:
            raise ValueError(f"{path}:{number}: invalid task: {error}") from None
    return [task for task in tasks if split in (None, "all") or task.split == split]


def save_tasks(tasks: list[Task], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(task.to_json(path.parent), sort_keys=True) for task in tasks]
    path.write_text("\n".join(lines) + "\n")


def prepare(task: Task, store: ImageStore) -> tuple[ImageRef, RegionCatalog | None]:
    """Put the task's image in the store, with its catalog (and background mask), as every system sees it."""
    ref = store.put_file(task.image)
    if task.catalog is None:
        return ref, None
    regions = [dict(region) for region in task.catalog["regions"]]
    if task.background_mask is not None:
        mask_ref = store.put(open_image(task.background_mask).convert("L"))
        for region in regions:
            if region["kind"] == "background":
                region["mask"] = mask_ref["id"]
    catalog = RegionCatalog(image_id=ref["id"], width=ref["width"], height=ref["height"], regions=regions)
    save_catalog(store, catalog)
    return ref, catalog
