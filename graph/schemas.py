"""Data the models produce and the graph passes around: plans, verdicts, judge failures, the judge protocol.

Pydantic models here are structured LLM outputs (reasons before scores, as a model should think before it
scores); graph state itself is a TypedDict in `state.py` that holds these as plain dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from pixplan.graph.checks import ChecklistItem
from pixplan.tools.store import ImageRef, ImageStore


class Step(BaseModel):
    """One atomic edit: one tool, one region, one clear instruction."""

    id: str = Field(description="Short id such as 's1'.")
    instruction: str = Field(description="What to change, where, and how; one edit only.")
    serves: list[str] = Field(description="Ids of the checklist items this step helps satisfy.")
    tool: str | None = Field(
        default=None, description="Name of the tool that fits the step best, from the tool list (a hint)."
    )


class Plan(BaseModel):
    """A checklist of concrete requirements, then the ordered steps that meet them."""

    checklist: list[ChecklistItem] = Field(min_length=1)
    steps: list[Step] = Field(min_length=1)


class ItemVerdict(BaseModel):
    """The judge's verdict on one checklist item."""

    id: str
    reason: str
    passed: bool


class Verdict(BaseModel):
    """A judge's assessment of an edit. Sub-scores are 0..10; None where the judge cannot tell."""

    reasons: list[str] = Field(description="Observations about the edited image, written before any score.")
    instruction_adherence: float | None = Field(default=None, ge=0, le=10)
    plausibility: float | None = Field(default=None, ge=0, le=10)
    preservation: float | None = Field(default=None, ge=0, le=10)
    checklist: list[ItemVerdict] = Field(default_factory=list)
    fix_instructions: str = Field(default="", description="How to fix the edit, if it falls short.")

    @property
    def score(self) -> float:
        """Overall 0..1: mean of the available sub-scores (/10) and of the checklist pass rate."""
        parts = [
            value / 10
            for value in (self.instruction_adherence, self.plausibility, self.preservation)
            if value is not None
        ]
        if self.checklist:
            parts.append(sum(item.passed for item in self.checklist) / len(self.checklist))
        return sum(parts) / len(parts) if parts else 0.0


class JudgeFailure(BaseModel):
    """A judge call that produced no verdict (error, timeout, refusal, unparseable output).

    Recorded in the trace as a failure, never turned into a score.
    """

    kind: Literal["error", "refusal", "invalid_output", "timeout"]
    message: str


@dataclass(kw_only=True)
class JudgeRequest:
    """What a judge needs: the images by reference and the requirements to hold them against."""

    scope: Literal["step", "final"]
    goal: str
    original: ImageRef
    before: ImageRef  # the image the edit started from (the original for a final judgement)
    after: ImageRef
    store: ImageStore
    instruction: str = ""  # the step's instruction (empty for a final judgement)
    region: str | list[float] | None = None  # the region the step edited, where known
    checklist: list[ChecklistItem] = field(default_factory=list)


class Judge(Protocol):
    """Anything that turns a `JudgeRequest` into a `Verdict`, or a `JudgeFailure` when it cannot."""

    name: str

    def judge(self, request: JudgeRequest) -> Verdict | JudgeFailure: ...
