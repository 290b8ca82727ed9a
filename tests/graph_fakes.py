"""Scripted fake chat models and test images for the graph tests (no model, no network).

`ScriptedChatModel` subclasses langchain_core's FakeMessagesListChatModel and adds what the graph needs:
`bind_tools` and `with_structured_output` (parsed from the reply's JSON content, as a real model's would be).
It answers from a list of replies, or from a function of the conversation, so that a resumed run (which
starts a fresh process) gets the same answers as an uninterrupted one.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableLambda
from PIL import Image, ImageDraw
from pydantic import BaseModel, Field, ValidationError

from pixplan.tools.regions import RegionCatalog, save_catalog
from pixplan.tools.store import ImageRef, ImageStore


class ScriptedChatModel(FakeMessagesListChatModel):
    """A fake tool-calling chat model: replies from `responses` in turn, or from `respond(messages)`.

    `delay_s` makes each call slow (timeouts), `error` makes it raise (failures); `profile` says whether it sees
    images (text-only unless a test says otherwise). Every conversation it was sent is in `seen`.
    """

    respond: Callable[[list[BaseMessage]], BaseMessage] | None = None
    profile: dict[str, Any] | None = Field(default_factory=lambda: {"image_inputs": False})
    model_name: str = "scripted"
    delay_s: float = 0.0
    error: str | None = None  # raise RuntimeError(error) instead of answering
    seen: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[str] = Field(default_factory=list)
    bound_schemas: list[dict] = Field(default_factory=list)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        time.sleep(self.delay_s)
        if self.error:
            raise RuntimeError(self.error)
        if self.respond is not None:
            from langchain_core.outputs import ChatGeneration, ChatResult

            return ChatResult(generations=[ChatGeneration(message=self.respond(list(messages)))])
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        from langchain_core.utils.function_calling import convert_to_openai_tool

        self.bound_schemas = [convert_to_openai_tool(tool)["function"] for tool in tools]
        self.bound_tools = [schema["name"] for schema in self.bound_schemas]
        return self

    def with_structured_output(
        self, schema: type[BaseModel], *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable:
        """Parsed from the reply's first tool call, else from its JSON content, as a real model's would be."""

        def parse(message: AIMessage) -> BaseModel:
            try:
                data = message.tool_calls[0]["args"] if message.tool_calls else json.loads(message.content)
                return schema.model_validate(data)
            except (json.JSONDecodeError, TypeError, ValidationError) as error:
                raise OutputParserException(f"invalid {schema.__name__}: {error}") from None

        def parse_with_raw(message: AIMessage) -> dict[str, Any]:
            try:
                return {"raw": message, "parsed": parse(message), "parsing_error": None}
            except OutputParserException as error:
                return {"raw": message, "parsed": None, "parsing_error": error}

        return self | RunnableLambda(parse_with_raw if include_raw else parse)


def tool_call(name: str, call_id: str = "call", **args: Any) -> AIMessage:
    return AIMessage(
        content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}]
    )


def plan_message(plan: dict[str, Any]) -> AIMessage:
    return AIMessage(content=json.dumps(plan))


def last_step_id(messages: list[BaseMessage]) -> str | None:
    """The step id in the orchestrator's task message ("Step s2: ...")."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            text = message.content if isinstance(message.content, str) else json.dumps(message.content)
            found = re.search(r"Step (\w+):", text)
            if found:
                return found.group(1)
    return None


def orchestrator_by_step(calls: dict[str, dict[str, Any]]) -> Callable[[list[BaseMessage]], BaseMessage]:
    """A deterministic orchestrator: the tool call for each step id ({"s1": {"name": ..., "args": ...}})."""

    def respond(messages: list[BaseMessage]) -> BaseMessage:
        step = last_step_id(messages)
        errors = sum(1 for m in messages if isinstance(m, ToolMessage))
        spec = calls[step]
        return tool_call(spec["name"], call_id=f"{step}-{errors}", **spec["args"])

    return respond


ECO_PLAN = {
    "checklist": [
        {
            "id": "c1",
            "text": "the background is green, like nature",
            "check": {"type": "color_in_range", "region": "background", "stat": "hue", "min": 70, "max": 170},
        },
        {"id": "c2", "text": "the product is kept", "check": {"type": "preserved", "region": "r1"}},
        {"id": "c3", "text": "the background is clearly warmer", "check": None},
    ],
    "steps": [
        {
            "id": "s1",
            "instruction": "Replace the background with a solid forest green.",
            "serves": ["c1", "c2"],
        },
        {"id": "s2", "instruction": "Make the background clearly warmer.", "serves": ["c3"]},
    ],
}

ECO_CALLS = {
    "s1": {
        "name": "replace_background",
        "args": {"image_id": "?", "region": "background", "color": "forestgreen"},
    },
    "s2": {"name": "adjust_tone", "args": {"image_id": "?", "region": "background", "warmth": 0.6}},
}


def make_ad(size: int = 96) -> Image.Image:
    """A tiny 'ad': a grey backdrop with a red product square in the middle."""
    image = Image.new("RGB", (size, size), (200, 200, 205))
    draw = ImageDraw.Draw(image)
    draw.rectangle([size // 3, size // 3, 2 * size // 3, 2 * size // 3], fill=(200, 30, 30))
    return image


def put_ad(store: ImageStore, size: int = 96) -> ImageRef:
    """Store the tiny ad with a hand-built region catalog (r1: the product, its mask; background)."""
    image = make_ad(size)
    ref = store.put(image)
    product = np.zeros((size, size), dtype=np.uint8)
    product[size // 3 : 2 * size // 3 + 1, size // 3 : 2 * size // 3 + 1] = 255
    product_ref = store.put(Image.fromarray(product, "L"), parent=ref["id"], tool="test")
    background_ref = store.put(Image.fromarray(255 - product, "L"), parent=ref["id"], tool="test")
    box = [round((size // 3) / size, 4), round((size // 3) / size, 4)] * 2
    box[2] = box[3] = round((2 * size // 3 + 1) / size, 4)
    catalog = RegionCatalog(
        image_id=ref["id"],
        width=size,
        height=size,
        regions=[
            {"id": "r1", "box": box, "kind": "object", "label": "main object", "mask": product_ref["id"]},
            {
                "id": "background",
                "box": [0.0, 0.0, 1.0, 1.0],
                "kind": "background",
                "label": "background",
                "mask": background_ref["id"],
            },
            {"id": "whole", "box": [0.0, 0.0, 1.0, 1.0], "kind": "whole", "label": "whole image"},
        ],
    )
    save_catalog(store, catalog)
    return ref


def run_eco(
    store_dir: str, db: str, thread_id: str, *, resume: bool = False, stall_at: str | None = None
) -> Any:
    """The eco edit of the tiny ad with the fakes, printing events as JSON lines (for the kill/resume test).

    With `stall_at`, the orchestrator hangs when asked for that step, so that a test can kill the process there.
    """
    import sys
    import threading
    import time

    from pixplan.graph import edit
    from pixplan.graph.metric_judge import MetricJudge

    store = ImageStore(store_dir)
    respond = orchestrator_by_step(ECO_CALLS)
    lock = threading.Lock()

    def emit(payload: dict[str, Any]) -> None:  # one write per line: nodes and the stream run in two threads
        with lock:
            sys.stdout.write(json.dumps(payload, default=str) + "\n")
            sys.stdout.flush()

    def orchestrate(messages: list[BaseMessage]) -> BaseMessage:
        step = last_step_id(messages)
        emit({"asked": step})
        if step == stall_at:
            time.sleep(60)
        return respond(messages)

    return edit(
        None if resume else put_ad(store)["id"],
        None if resume else "make this advertisement more eco-friendly",
        planner=ScriptedChatModel(responses=[plan_message(ECO_PLAN)]),
        orchestrator=ScriptedChatModel(responses=[], respond=orchestrate),
        judge=MetricJudge(),
        store_dir=store_dir,
        db=db,
        thread_id=thread_id,
        resume=resume,
        on_event=emit,
    )


if __name__ == "__main__":
    import sys

    store_dir, db, thread_id, mode = sys.argv[1:5]
    result = run_eco(
        store_dir, db, thread_id, resume=mode == "resume", stall_at="s2" if mode == "stall" else None
    )
    print(json.dumps({"result": result.ref["id"], "status": result.status}), flush=True)
