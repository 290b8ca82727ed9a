"""Plans as data: what makes a plan unusable (`validate_plan`), how well it covers its checklist (`score_plan`).

The planner node re-asks a malformed plan with `validate_plan`'s errors, in words a model can act on, and keeps
the candidate that `score_plan` ranks best; the review node validates a plan the user edited the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from pixplan.graph.schemas import Plan
from pixplan.tools.regions import RegionCatalog, RegionError, parse_region


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9$€£%]+", text.lower())


def validate_plan(
    plan: Plan,
    catalog: RegionCatalog | None,
    *,
    max_steps: int,
    goal: str | None = None,
    tools: Sequence[str] | None = None,
) -> list[str]:
    """What makes a parsed plan unusable, in words a model can act on; empty when it is fine."""
    errors = []
    if tools is not None:
        for step in plan.steps:
            if step.tool is not None and step.tool not in tools:
                errors.append(
                    f"step {step.id} names an unknown tool {step.tool!r}; the tools are {list(tools)}"
                )
    for item in plan.checklist:
        if len(_words(item.text)) < 3:
            errors.append(
                f"checklist item {item.id} ({item.text!r}) is not a requirement: write a sentence that can be "
                "checked on the image, e.g. 'the background is green'"
            )
    if goal is not None:
        for step in plan.steps:
            if _words(step.instruction) == _words(goal):
                errors.append(
                    f"step {step.id} only repeats the goal: say which concrete edit to make, where and how"
                )
    item_ids = [item.id for item in plan.checklist]
    step_ids = [step.id for step in plan.steps]
    for kind, ids in (("checklist item", item_ids), ("step", step_ids)):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            errors.append(f"{kind} ids must be unique; repeated: {', '.join(duplicates)}")
    if len(plan.steps) > max_steps:
        errors.append(f"at most {max_steps} steps, got {len(plan.steps)}")
    known_regions = {entry["id"] for entry in (catalog or {"regions": []})["regions"]}
    for step in plan.steps:
        if not step.instruction.strip():
            errors.append(f"step {step.id} has an empty instruction")
        unknown = [ref for ref in step.serves if ref not in item_ids]
        if unknown:
            errors.append(
                f"step {step.id} serves unknown checklist ids {unknown}; checklist ids are {item_ids}"
            )
    for item in plan.checklist:
        if item.check is None:
            continue
        try:
            region = parse_region(item.check.region)
        except RegionError as error:
            errors.append(f"checklist item {item.id}: {error}")
            continue
        if region.kind == "catalog" and region.catalog_id not in known_regions:
            errors.append(
                f"checklist item {item.id}: unknown region {region.catalog_id!r}; "
                f"the catalog has {sorted(known_regions)}"
            )
    return errors


_COMPOUND = re.compile(r";|\bthen\b|\band also\b|\. \w", re.IGNORECASE)


def score_plan(plan: Plan) -> tuple[float, dict[str, float]]:
    """How well a plan meets its own checklist: 0..1, with the parts.

    coverage: share of checklist items served by some step; atomic: share of steps that are one edit (no
    ';', 'then', several sentences, at most 3 items served); non_redundant: share of steps that serve an item
    and do not repeat an earlier step.
    """
    item_ids = {item.id for item in plan.checklist}
    served = {ref for step in plan.steps for ref in step.serves if ref in item_ids}
    coverage = len(served) / len(item_ids) if item_ids else 0.0
    atomic = sum(
        1 for step in plan.steps if not _COMPOUND.search(step.instruction.strip()) and len(step.serves) <= 3
    ) / len(plan.steps)
    seen: set[str] = set()
    useful = 0
    for step in plan.steps:
        key = " ".join(step.instruction.lower().split())
        if key not in seen and any(ref in item_ids for ref in step.serves):
            useful += 1
        seen.add(key)
    non_redundant = useful / len(plan.steps)
    parts = {
        "coverage": round(coverage, 4),
        "atomic": round(atomic, 4),
        "non_redundant": round(non_redundant, 4),
    }
    return round(0.6 * coverage + 0.2 * atomic + 0.2 * non_redundant, 4), parts


def same_steps(plan: Plan, previous: dict[str, Any] | None) -> bool:
    """The plan's steps say the same as the previous plan's (a replan that would only repeat its failure)."""
    if previous is None:
        return False
    return [_words(step.instruction) for step in plan.steps] == [
        _words(step["instruction"]) for step in previous["steps"]
    ]


def short_error(error: Exception) -> str:
    """A parse or validation error in one line (at most eight pydantic errors), for a model to correct."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'plan'}: {item['msg']}"
            for item in error.errors()[:8]
        )
    return str(error).strip().splitlines()[0][:400] if str(error).strip() else type(error).__name__
