"""What an edit leaves behind: the JSON trace, the contact sheet, and the meter that counts model use.

The trace is the user's explanation of an edit and the raw material for training: the plan with its checklist
and steps, every attempt at every step (tool, arguments with the region, image id, verdict or judge failure),
the final verdict, and model calls, tokens and seconds per role.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.tracers.context import register_configure_hook
from PIL import Image, ImageDraw, ImageFont

from pixplan.graph.state import RoleUsage
from pixplan.tools.store import ImageStore

TRACE_VERSION = 1


class UsageMeter(BaseCallbackHandler):
    """Counts the chat-model calls made while it is active, with their tokens (where the model reports them)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.model_calls = 0
        self.input_tokens = 0
        self.output_tokens = 0

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        with self._lock:
            self.model_calls += 1
            for generations in response.generations:
                for generation in generations[:1]:
                    message = generation.message if isinstance(generation, ChatGeneration) else None
                    usage = message.usage_metadata if isinstance(message, AIMessage) else None
                    if usage:
                        self.input_tokens += usage.get("input_tokens", 0)
                        self.output_tokens += usage.get("output_tokens", 0)


_active_meter: ContextVar[UsageMeter | None] = ContextVar("pixplan_usage_meter", default=None)
register_configure_hook(_active_meter, inheritable=True)


@contextmanager
def metered(role: str, usage: dict[str, RoleUsage], invocations: int = 1) -> Iterator[UsageMeter]:
    """Count the model calls, tokens and seconds of the block into `usage[role]` (added to what is there)."""
    meter = UsageMeter()
    token = _active_meter.set(meter)
    start = time.perf_counter()
    try:
        yield meter
    finally:
        _active_meter.reset(token)
        seconds = time.perf_counter() - start
        previous = usage.get(role)
        usage[role] = RoleUsage(
            invocations=invocations + (previous["invocations"] if previous else 0),
            model_calls=meter.model_calls + (previous["model_calls"] if previous else 0),
            input_tokens=meter.input_tokens + (previous["input_tokens"] if previous else 0),
            output_tokens=meter.output_tokens + (previous["output_tokens"] if previous else 0),
            seconds=round(seconds + (previous["seconds"] if previous else 0.0), 4),
        )


def build_trace(
    values: dict[str, Any], *, thread_id: str | None = None, settings: dict | None = None
) -> dict:
    """The JSON trace of a finished (or stopped) edit, from the graph's final state values."""
    plan = values.get("plan")
    steps = []
    for index, step in enumerate((plan or {}).get("steps", [])):
        attempts = [
            attempt
            for attempt in values.get("attempts", [])
            if attempt["plan_version"] == values.get("plan_version") and attempt["step_index"] == index
        ]
        steps.append({**step, "attempts": attempts, "accepted": any(a["accepted"] for a in attempts)})
    final = values.get("final_verdict")
    return {
        "trace_version": TRACE_VERSION,
        "thread_id": thread_id,
        "goal": values.get("goal"),
        "status": values.get("status"),
        "original": values.get("original"),
        "result": values.get("current"),
        "settings": settings or {},
        "plan": {"checklist": (plan or {}).get("checklist", []), "steps": steps},
        "plans": values.get("plans", []),
        "attempts": values.get("attempts", []),
        "final_verdict": final,
        "final_score": _score(final),
        "final_failure": values.get("final_failure"),
        "usage": values.get("usage", {}),
    }


def _score(verdict: dict | None) -> float | None:
    if verdict is None:
        return None
    from pixplan.graph.schemas import Verdict

    return round(Verdict.model_validate(verdict).score, 4)


def write_trace(trace: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(trace, indent=1, sort_keys=False, default=str))
    return path


def _fit(image: Image.Image, size: int) -> Image.Image:
    scale = size / max(image.size)
    return image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS
    )


def _region_text(region: Any) -> str:
    if isinstance(region, list):
        return "[" + ",".join(f"{value:.2f}" for value in region) + "]"
    return str(region)


def contact_sheet(trace: dict, store: ImageStore, *, tile: int = 256) -> Image.Image:
    """Before, each accepted step, after: one labelled row of thumbnails."""
    panels: list[tuple[str, str, list[str]]] = [("before", trace["original"]["id"], [])]
    for attempt in trace["attempts"]:
        if attempt["accepted"] and attempt["image"] is not None:
            score = "unjudged" if attempt["score"] is None else f"score {attempt['score']:.2f}"
            tries = f", try {attempt['attempt']}" if attempt["attempt"] > 1 else ""
            panels.append(
                (
                    f"{attempt['step_id']}: {attempt['tool']}",
                    attempt["image"]["id"],
                    [_region_text(attempt["args"].get("region")), score + tries],
                )
            )
    final = "no final verdict" if trace["final_score"] is None else f"final {trace['final_score']:.2f}"
    panels.append(("after", trace["result"]["id"], [final, str(trace["status"])]))
    font = ImageFont.load_default(size=max(10, tile // 18))
    line = font.size + 4
    label_height = 3 * line + 6
    pad = 8
    sheet = Image.new("RGB", (pad + len(panels) * (tile + pad), tile + label_height + 2 * pad), "white")
    draw = ImageDraw.Draw(sheet)
    for column, (title, image_id, notes) in enumerate(panels):
        x = pad + column * (tile + pad)
        thumb = _fit(store.get(image_id).convert("RGB"), tile)
        sheet.paste(thumb, (x + (tile - thumb.width) // 2, pad + (tile - thumb.height) // 2))
        draw.rectangle([x - 1, pad - 1, x + tile, pad + tile], outline=(180, 180, 180))
        for row, text in enumerate([title, *notes]):
            draw.text(
                (x, pad + tile + 4 + row * line), _clip(draw, text, font, tile), fill="black", font=font
            )
    return sheet


def _clip(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text
