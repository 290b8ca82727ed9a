"""Run settings of an edit: the typed `context_schema` of the graph.

Every field has a default and a description; `pixplan edit` flags and `edit(**settings)` map onto these fields.
Models are named by spec strings (`"openai:gpt-4.1"`, `"local:..."`); nodes resolve them lazily, so building
the graph needs no keys, no weights and no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from pixplan.graph.models import DEFAULT_MODEL
from pixplan.tools.store import ImageStore, default_store_dir


@dataclass(kw_only=True)
class Context:
    """Settings of one edit run."""

    planner_model: str = field(
        default=DEFAULT_MODEL,
        metadata={"description": "Chat model that writes the checklist and steps ('provider:model' spec)."},
    )
    orchestrator_model: str = field(
        default=DEFAULT_MODEL,
        metadata={"description": "Tool-calling chat model that picks tool, region and arguments per step."},
    )
    judge: str = field(
        default="metric",
        metadata={
            "description": "'metric' (deterministic pixel checks, offline) or a multimodal chat model spec "
            "for the LLM judge."
        },
    )
    max_retries_per_step: int = field(
        default=2, metadata={"description": "Retries of a step the judge failed, before a replan."}
    )
    max_replans: int = field(
        default=1, metadata={"description": "Replans after a step or the final judgement failed."}
    )
    max_tool_errors: int = field(
        default=3,
        metadata={"description": "Bad tool calls (unknown tool, invalid region) corrected per attempt."},
    )
    max_plan_attempts: int = field(
        default=3, metadata={"description": "Times a malformed plan is re-asked with its validation error."}
    )
    num_plan_candidates: int = field(
        default=2,
        metadata={"description": "Candidate plans sampled; the one that best covers its checklist wins."},
    )
    max_steps: int = field(default=6, metadata={"description": "Most steps a plan may have."})
    pass_threshold: float = field(
        default=0.6, metadata={"description": "Judge score (0..1) at which a step is accepted."}
    )
    final_threshold: float = field(
        default=0.6, metadata={"description": "Judge score (0..1) at which the whole edit passes."}
    )
    approve_plan: bool = field(
        default=False,
        metadata={"description": "Pause (a LangGraph interrupt) for the user to accept or edit the plan."},
    )
    send_images: bool = field(
        default=True,
        metadata={
            "description": "Show the image to models that accept images (others get the region catalog)."
        },
    )
    store_dir: str = field(
        default_factory=lambda: str(default_store_dir()),
        metadata={"description": "Image store folder of the run (tools read and write images there)."},
    )

    @cached_property
    def store(self) -> ImageStore:
        """The run's image store: one per context, so every node of a run shares it."""
        return ImageStore(self.store_dir)

    def limits(self) -> dict[str, Any]:
        """The budgets and thresholds the routers read (frozen into the state at the start of a run)."""
        return {
            "max_retries_per_step": self.max_retries_per_step,
            "max_replans": self.max_replans,
            "max_tool_errors": self.max_tool_errors,
            "pass_threshold": self.pass_threshold,
            "final_threshold": self.final_threshold,
            "approve_plan": self.approve_plan,
        }


def run_context(runtime: Runtime[Context]) -> Context:
    """The run's settings: the context the caller gave (a `Context` or a dict of its fields), or the defaults
    when none was given (`graph.invoke(input)`, or the graph as a node of a parent graph without a context)."""
    context = runtime.context
    if isinstance(context, Context):
        return context
    if context is None:
        return _default_context(str(default_store_dir()))
    if isinstance(context, dict):  # a parent graph's context: the fields it shares with ours
        names = {item.name for item in fields(Context)}
        return Context(**{key: value for key, value in context.items() if key in names})
    raise TypeError(
        f"the edit graph's context is a pixplan Context or a dict of its fields, got {type(context).__name__}"
    )


@lru_cache(maxsize=4)
def _default_context(store_dir: str) -> Context:
    """The defaults, one object per default store folder, so a run without a context shares one store."""
    return Context(store_dir=store_dir)


def context_fields() -> dict[str, str]:
    """Field name -> description, for help texts."""
    return {item.name: item.metadata.get("description", "") for item in fields(Context)}


def default_db_path(store_dir: str | Path) -> Path:
    """Where checkpoints go by default: `checkpoints.sqlite` beside the image store."""
    return Path(store_dir).parent / "checkpoints.sqlite"
