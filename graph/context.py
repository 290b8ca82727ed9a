"""Run settings of an edit: the typed `context_schema` of the graph.

Every field has a default and a description; `pixplan edit`'s flags are made from these fields
(`add_context_arguments`) and `edit(**settings)` takes them by name.
Models are named by spec strings (`"openai:gpt-4.1"`, `"local:..."`); nodes resolve them lazily, so building
the graph needs no keys, no weights and no torch.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, fields
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from pixplan.graph.models import DEFAULT_ORCHESTRATOR, DEFAULT_PLANNER
from pixplan.tools.store import ImageStore, default_store_dir


@dataclass(kw_only=True)
class Context:
    """Settings of one edit run."""

    planner_model: str = field(
        default=DEFAULT_PLANNER,
        metadata={
            "flag": "--planner",
            "description": "Chat model that writes the checklist and steps ('provider:model' spec).",
        },
    )
    orchestrator_model: str = field(
        default=DEFAULT_ORCHESTRATOR,
        metadata={
            "flag": "--orchestrator",
            "description": "Tool-calling chat model that picks tool, region and arguments per step.",
        },
    )
    judge: str = field(
        default="metric",
        metadata={
            "flag": "--judge",
            "description": "'metric' (deterministic pixel checks, offline) or a multimodal chat model spec "
            "for the LLM judge.",
        },
    )
    hints: bool = field(
        default=True,
        metadata={
            "description": "Local models: among allowed options, prefer those the step's words name (a colour, "
            "an enum value, a region's label); off: the model's likelihood alone chooses."
        },
    )
    max_retries_per_step: int = field(
        default=2,
        metadata={
            "flag": "--max-retries",
            "description": "Retries of a step the judge failed, before a replan.",
            "range": (0, 10),
        },
    )
    max_replans: int = field(
        default=1,
        metadata={"description": "Replans after a step or the final judgement failed.", "range": (0, 10)},
    )
    replan_failed_step: bool = field(
        default=False,
        metadata={
            "description": "A step the judge still fails after its retries is replanned at once; off (the "
            "default: on the test split it scores higher, since a replan at once drops the plan's later, "
            "sound steps): it is left, the plan's other steps run, and the final judgement replans what is "
            "still missing."
        },
    )
    max_tool_errors: int = field(
        default=3,
        metadata={
            "description": "Bad tool calls (unknown tool, invalid region) corrected per attempt.",
            "range": (0, 10),
        },
    )
    max_plan_attempts: int = field(
        default=3,
        metadata={
            "description": "Times a malformed plan is re-asked with its validation error.",
            "range": (1, 10),
        },
    )
    num_plan_candidates: int = field(
        default=2,
        metadata={
            "flag": "--candidates",
            "description": "Candidate plans sampled; the one that best covers its checklist wins.",
            "range": (1, 16),
        },
    )
    max_steps: int = field(
        default=6, metadata={"description": "Most steps a plan may have.", "range": (1, 30)}
    )
    pass_threshold: float = field(
        default=0.6,
        metadata={"description": "Judge score (0..1) at which a step is accepted.", "range": (0, 1)},
    )
    final_threshold: float = field(
        default=0.6,
        metadata={"description": "Judge score (0..1) at which the whole edit passes.", "range": (0, 1)},
    )
    approve_plan: bool = field(
        default=False,
        metadata={
            "flag": "--approve",
            "description": "Pause (a LangGraph interrupt) for the user to accept or edit the plan.",
        },
    )
    send_images: bool = field(
        default=True,
        metadata={
            "description": "Show the image to models that accept images (others get the region catalog)."
        },
    )
    store_dir: str = field(
        default_factory=lambda: str(default_store_dir()),
        metadata={
            "flag": "--store",
            "description": "Image store folder of the run (tools read and write images there; default $PIXPLAN_STORE, else ~/.cache/pixplan/store).",
        },
    )

    trace_prompts: bool = field(
        default=False,
        metadata={
            "description": "Record in the trace the full prompt each model was sent (a hash of it is always kept)."
        },
    )

    @cached_property
    def store(self) -> ImageStore:
        """The run's image store: one per context, so every node of a run shares it."""
        return ImageStore(self.store_dir)

    def __post_init__(self) -> None:
        """Refuse settings out of range here, where they enter (CLI, server context, `edit()`), with the range.

        A limit out of range is not a harmless choice: 0 candidate plans does nothing and exits 0, a negative
        replan budget shrinks the recursion limit until any plan of three steps dies.
        """
        for item in fields(self):
            value = getattr(self, item.name)
            if "range" in item.metadata:
                low, high = item.metadata["range"]
                if item.type in ("int", int):
                    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                        raise ValueError(
                            f"{item.name} ({context_flag(item)}) must be an integer from {low} to {high}, "
                            f"got {value!r}"
                        )
                elif (
                    not isinstance(value, int | float)
                    or isinstance(value, bool)
                    or not math.isfinite(value)
                    or not low <= value <= high
                ):
                    raise ValueError(
                        f"{item.name} ({context_flag(item)}) must be a number from {low} to {high}, got {value!r}"
                    )
            elif item.type in ("str", str) and (not isinstance(value, str) or not value.strip()):
                raise ValueError(
                    f"{item.name} ({context_flag(item)}) must be a non-empty string, got {value!r}"
                )
            elif item.type in ("bool", bool) and not isinstance(value, bool):
                raise ValueError(f"{item.name} ({context_flag(item)}) must be true or false, got {value!r}")

    def limits(self) -> dict[str, Any]:
        """The budgets and thresholds the routers read (frozen into the state at the start of a run)."""
        return {
            "max_retries_per_step": self.max_retries_per_step,
            "max_replans": self.max_replans,
            "replan_failed_step": self.replan_failed_step,
            "max_tool_errors": self.max_tool_errors,
            "pass_threshold": self.pass_threshold,
            "final_threshold": self.final_threshold,
            "approve_plan": self.approve_plan,
        }


def run_context(runtime: Runtime[Context], default_store_only: bool = False) -> Context:
    """The run's settings: the context the caller gave (a `Context` or a dict of its fields), or the defaults
    when none was given (`graph.invoke(input)`, or the graph as a node of a parent graph without a context).

    `default_store_only` (a server: `build_graph(default_store_only=True)`): every run uses the default store
    (`$PIXPLAN_STORE`, else ~/.cache/pixplan/store, the one the images route serves), resolved per run; a
    context naming another is refused, so a remote client can neither write into a folder of its choice nor
    read another store's images by id."""
    context = runtime.context
    if context is None:
        context = _default_context(str(default_store_dir()))
    elif isinstance(context, dict):  # a parent graph's context: the fields it shares with ours
        names = {item.name for item in fields(Context)}
        context = Context(**{key: value for key, value in context.items() if key in names})
    elif not isinstance(context, Context):
        raise TypeError(
            f"the edit graph's context is a pixplan Context or a dict of its fields, got {type(context).__name__}"
        )
    if default_store_only and Path(context.store_dir).resolve() != default_store_dir().resolve():
        raise ValueError("store_dir cannot be set by a run on this graph: it keeps its images in its own store")
    return context


@lru_cache(maxsize=4)
def _default_context(store_dir: str) -> Context:
    """The defaults, one object per default store folder, so a run without a context shares one store."""
    return Context(store_dir=store_dir)


def context_fields() -> dict[str, str]:
    """Field name -> description, for help texts."""
    return {item.name: item.metadata.get("description", "") for item in fields(Context)}


def context_flag(item: Any) -> str:
    """The command-line flag of a `Context` field: its `flag` metadata, else ``--field-name``."""
    return item.metadata.get("flag", "--" + item.name.replace("_", "-"))


def add_context_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per `Context` field, its help the field's description and default, so a new setting is a
    flag of `pixplan edit` with no second declaration. Flags left out keep the field's default (argparse's
    default is None: only what the user gave is passed on)."""
    group = parser.add_argument_group("run settings (the graph's Context)")
    defaults = Context()  # the store's default depends on the environment: said in its help, not shown
    for item in fields(Context):
        default = getattr(defaults, item.name)
        shown = "" if item.name == "store_dir" else f" (default: {default})"
        help_text = item.metadata.get("description", "") + shown
        kind = (
            item.type
            if isinstance(item.type, type)
            else {"bool": bool, "int": int, "float": float}.get(str(item.type), str)
        )
        if kind is bool:
            action = argparse.BooleanOptionalAction if default else "store_true"
            group.add_argument(
                context_flag(item), dest=item.name, action=action, default=None, help=help_text
            )
        else:
            group.add_argument(context_flag(item), dest=item.name, type=kind, default=None, help=help_text)


def context_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The `Context` fields the user set on the command line (see `add_context_arguments`)."""
    return {
        item.name: getattr(args, item.name)
        for item in fields(Context)
        if getattr(args, item.name) is not None
    }


def default_db_path(store_dir: str | Path) -> Path:
    """Where checkpoints go by default: `checkpoints.sqlite` beside the image store."""
    return Path(store_dir).parent / "checkpoints.sqlite"
