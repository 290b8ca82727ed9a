"""Counting what models cost: calls, errors, tokens and seconds, per role, for the trace.

`UsageMeter` is the one counter: a LangChain callback handler that sees every chat-model call made under it.
`metered(role, usage)` activates a meter for a block (through a context variable registered with LangChain, so
it reaches the calls inside `with_structured_output`, re-asks, and the judge's worker threads) and adds what it
counted to `usage[role]`; the graph's nodes wrap each role's work in it. A meter can also be passed as a
callback (`config={"callbacks": [meter]}`) to count one model's calls anywhere.

A meter also records what each call was sent, so that a user can see what a model saw (the region catalog with
the image's own text, quoted as data): a hash and size of every prompt, the messages themselves (image data
replaced by its hash) with `full_prompts` (`Context.trace_prompts`, `pixplan edit --trace-prompts`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult
from langchain_core.tracers.context import register_configure_hook

from pixplan.graph.state import RoleUsage


class UsageMeter(BaseCallbackHandler):
    """Counts chat-model calls (and failed ones), their tokens where the model reports them, and seconds.

    Thread-safe: calls from several threads add up.
    """

    raise_error = False
    run_inline = True

    def __init__(self, full_prompts: bool = False) -> None:
        super().__init__()
        self.full_prompts = full_prompts
        self.prompts: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._started: dict[UUID, float] = {}
        self.calls = 0
        self.errors = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.seconds = 0.0

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
        records = []
        for batch in messages:
            shown = [{"type": message.type, "content": _without_pixels(message.content)} for message in batch]
            text = json.dumps(shown, sort_keys=True, default=str)
            record: dict[str, Any] = {"sha256": hashlib.sha256(text.encode()).hexdigest(), "chars": len(text)}
            if self.full_prompts:
                record["messages"] = shown
            records.append(record)
        with self._lock:
            self._started[run_id] = time.perf_counter()
            self.prompts += records

    def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self._started[run_id] = time.perf_counter()

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        input_tokens = output_tokens = 0
        for generations in response.generations:
            for generation in generations[:1]:
                usage = getattr(getattr(generation, "message", None), "usage_metadata", None) or {}
                input_tokens += usage.get("input_tokens", 0)
                output_tokens += usage.get("output_tokens", 0)
        if not input_tokens and not output_tokens:  # providers that report usage only in llm_output
            usage = (response.llm_output or {}).get("token_usage") or {}
            input_tokens = usage.get("prompt_tokens", 0) or 0
            output_tokens = usage.get("completion_tokens", 0) or 0
        with self._lock:
            self.calls += 1
            self.input_tokens += input_tokens
            self.output_tokens += output_tokens
            self.seconds += time.perf_counter() - self._started.pop(run_id, time.perf_counter())

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self.calls += 1
            self.errors += 1
            self.seconds += time.perf_counter() - self._started.pop(run_id, time.perf_counter())

    def usage(self) -> dict[str, Any]:
        """``{"calls", "errors", "input_tokens", "output_tokens", "seconds"}`` so far."""
        with self._lock:
            return {
                "calls": self.calls,
                "errors": self.errors,
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "seconds": round(self.seconds, 3),
            }

    def __repr__(self) -> str:
        return f"UsageMeter({self.usage()})"


def _without_pixels(content: Any) -> Any:
    """Message content with each image block's data replaced by its hash (a prompt record holds no pixels)."""
    if not isinstance(content, list):
        return content
    shown = []
    for block in content:
        if isinstance(block, dict) and block.get("type") in ("image", "image_url"):
            data = json.dumps(block, sort_keys=True, default=str).encode()
            block = {"type": block["type"], "sha256": hashlib.sha256(data).hexdigest()}
        shown.append(block)
    return shown


_active_meter: ContextVar[UsageMeter | None] = ContextVar("pixplan_usage_meter", default=None)
register_configure_hook(_active_meter, inheritable=True)


@contextmanager
def metered(
    role: str, usage: dict[str, RoleUsage], invocations: int = 1, *, full_prompts: bool = False
) -> Iterator[UsageMeter]:
    """Count the model calls, tokens and seconds of the block into `usage[role]` (added to what is there), with
    the record of each prompt sent."""
    meter = UsageMeter(full_prompts)
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
            model_calls=meter.calls + (previous["model_calls"] if previous else 0),
            input_tokens=meter.input_tokens + (previous["input_tokens"] if previous else 0),
            output_tokens=meter.output_tokens + (previous["output_tokens"] if previous else 0),
            seconds=round(seconds + (previous["seconds"] if previous else 0.0), 4),
            prompts=(previous.get("prompts", []) if previous else []) + meter.prompts,
        )
