"""`pixplan tasks check FOLDER`: the two calibrations a task folder needs before its scores mean anything.

    pixplan tasks check my-tasks/          # exit code 1 when any item breaks a calibration

The bundled benchmark is built to pass both, and any folder of tasks (`docs/tasks.md`) should:

1. **untouched**: the task's own image, judged against itself, fails every change item and passes every keep
   item. A change item that already passes (a target word already in the starting text, a background that
   already has the wanted colour, OCR that reads a hard font as garbage so that `text_absent` holds) would
   reward doing nothing; a keep item that fails would punish every system alike.
2. **ground truth**: the task's `ground_truth` calls, run with the real tools (the `oracle` system), pass every
   item. An item they fail asks for something the intended edit does not deliver, or that its check cannot see.

Items without a typed check are not measured (the metric judge cannot); a task without ground truth gets only
the first calibration, and says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pixplan.graph.metric_judge import evaluate_checklist
from pixplan.tools.store import ImageStore
from pixplan.training.systems import oracle
from pixplan.training.tasks import Task, prepare


@dataclass(frozen=True)
class Problem:
    """One item of one task that breaks a calibration (`item` is None for a problem of the whole task)."""

    task: str
    item: str | None
    calibration: str  # "untouched" or "ground truth"
    reason: str

    def __str__(self) -> str:
        return f"{self.task} {self.item or '-'} ({self.calibration}): {self.reason}"


def check_task(task: Task, store: ImageStore) -> tuple[list[Problem], list[str]]:
    """The problems of one task, and notes (what could not be checked)."""
    problems: list[Problem] = []
    notes: list[str] = []
    image, catalog = prepare(task, store)
    original = store.get(image["id"])
    items, unverifiable = evaluate_checklist(task.checklist, original, original, catalog, store)
    if unverifiable:
        notes.append(f"{task.id}: items without a typed check are not measured: {', '.join(unverifiable)}")
    for item in items:
        if item.id in task.keep and not item.passed:
            problems.append(Problem(task.id, item.id, "untouched", f"a keep item fails: {item.reason}"))
        elif item.id not in task.keep and item.passed:
            problems.append(
                Problem(task.id, item.id, "untouched", f"a change item already passes: {item.reason}")
            )
    if not task.ground_truth:
        notes.append(f"{task.id}: no ground_truth, so the ground-truth calibration is skipped")
        return problems, notes
    outcome = oracle(task, store, image)
    for number, step in enumerate(outcome.steps, 1):
        if "error" in step:
            problems.append(
                Problem(
                    task.id, None, "ground truth", f"call {number} ({step['tool']}) failed: {step['error']}"
                )
            )
    edited = store.get(outcome.image_id)
    items, _ = evaluate_checklist(task.checklist, original, edited, catalog, store)
    for item in items:
        if not item.passed:
            problems.append(
                Problem(task.id, item.id, "ground truth", f"fails after the ground truth: {item.reason}")
            )
    return problems, notes


def check_tasks(tasks: list[Task], store: ImageStore) -> Iterator[tuple[Task, list[Problem], list[str]]]:
    """Check tasks one by one (all sharing `store`), yielding each with its problems and notes."""
    for task in tasks:
        problems, notes = check_task(task, store)
        yield task, problems, notes
