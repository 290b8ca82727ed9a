"""The chat assistant: a messages graph over the edit graph, one edit per human turn, versions kept per thread.

```
START -> read_turn --edit-----> edit_turn ------> END    (the edit graph as a subgraph, fresh budgets each turn)
                   '--switch---> switch_version -> END    (undo, go back to a version)
                   '--reply----> END                      (a bad turn, or an image without words: answered)
```

A turn is a `HumanMessage` of text and at most one image block (any form `import_image_input` reads; an http(s)
URL is refused, pixplan runs offline). A new image is *added* to the thread's versions and becomes the current
one, so nothing earlier is lost and "undo" returns to the image before it. One structured-output call of the
planner model classifies the turn among explicit choices (`TurnIntent`: edit, plan_first, undo, go_to_version,
less those that cannot apply); a local model decodes among them, its `hints` setting (`Context.hints`)
preferring the options the message names (`ACTION_LABELS`); any other chat model reads the same choices in the
prompt. A plan-first turn pauses at the edit graph's plan review: resume with ``Command(resume=True)`` or an
edited plan dict, as for the edit graph.

Progress: the edit graph's events (planned, step_started, tool_chosen, judged, final) stream from the subgraph:
``graph.stream(..., stream_mode="custom", subgraphs=True)`` yields ``(namespace, "custom", event)``; the chat's
own events (``turn``, ``version``) come with the empty namespace.

Images stay small in checkpoints: the user's image block is replaced in the thread by a preview (longest side
`PREVIEW_SIDE`, JPEG) with the full image as the block's ``file_id`` (its store id; the server's
``GET /images/{id}`` serves its bytes), and each answer carries its result the same way.
"""

from __future__ import annotations

import base64
import io
import json
import operator
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from pixplan.graph import prompts
from pixplan.graph.api import recursion_limit
from pixplan.graph.builder import build_graph
from pixplan.graph.context import Context, run_context
from pixplan.graph.models import cached_chat_model, takes_choices
from pixplan.graph.schemas import Judge
from pixplan.graph.trace import build_trace
from pixplan.tools.image_input import import_image_input
from pixplan.tools.store import ImageError, ImageRef, ImageStore

#: Longest side of the image previews in messages (the full images stay in the store, named by ``file_id``).
PREVIEW_SIDE = 256
#: What a turn may ask for, in the order a model is offered them.
Action = Literal["edit", "plan_first", "undo", "go_to_version"]
#: The words that name each action, for a local model's hints (`Context.hints`): among the allowed actions, those
#: whose words the message names in the largest share compete (`choices.mention_score`; a word of 4+ letters
#: also matches its inflections and prefixes: "back" would match "background", so it is not here). A message
#: that names none is left to the model. Words, so a message can mislead them ("replace the background with
#: the original colour" names `go_to_version` best): `Context(hints=False)` or a stronger model then.
ACTION_LABELS = {
    "edit": "edit make change add remove replace",
    "plan_first": "plan first before start show approve see",
    "undo": "undo revert",
    "go_to_version": "version original first",
}
#: What names a version by its place ("the first version"), for the same hints.
VERSION_LABELS = ["first original", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"]


class TurnIntent(BaseModel):
    """What the user's message asks the assistant to do."""

    action: Action = Field(
        description="edit, plan_first (an edit whose plan the user approves first), undo, or go_to_version."
    )
    version: int = Field(
        description="For go_to_version: the version to show (0: the image sent); else the current."
    )


class Version(TypedDict):
    """One image of a thread: the upload (version 0, or a later one) or the result of an edit turn."""

    version: int
    image: ImageRef
    turn: int  # the human turn that made it (1-based)
    goal: str | None  # the edit request that made it; None for an image the user sent
    score: float | None  # the edit's final judgement; None for an upload or without a verdict
    parent: int | None  # the version it was edited from; None for an upload


class ChatInput(TypedDict):
    """A turn: the user's message (text and at most one image block)."""

    messages: Annotated[list[AnyMessage], add_messages]


class ChatOutput(ChatInput):
    """What a client reads: the conversation, the versions and the one shown now."""

    versions: Annotated[list[Version], operator.add]
    current: int


class ChatState(ChatOutput):
    turn: Annotated[int, operator.add]  # human turns read
    previous: list[int]  # undo stack: the version shown before each change, the latest last
    request: dict[str, Any]  # this turn as read: action, text, version


# -- image blocks --------------------------------------------------------------------------------------------


def image_block(store: ImageStore, ref: ImageRef, version: int) -> dict[str, Any]:
    """A standard image content block for a store image: a JPEG preview as base64, the full image as ``file_id``."""
    image = store.get(ref["id"]).convert("RGB")
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return {
        "type": "image",
        "base64": base64.b64encode(buffer.getvalue()).decode(),
        "mime_type": "image/jpeg",
        "file_id": ref["id"],
        "extras": {"version": version, "width": ref["width"], "height": ref["height"]},
    }


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _answer(text: str, block: dict[str, Any] | None = None) -> AIMessage:
    return AIMessage(content=[_text(text)] + ([block] if block else []))


def split_content(content: Any) -> tuple[str, list[dict[str, Any]], list[str]]:
    """A message's text, its image blocks, and the types of blocks that are neither."""
    if isinstance(content, str):
        return content.strip(), [], []
    texts, images, others = [], [], []
    for block in content or []:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") in ("image", "image_url"):
            images.append(block)
        else:
            others.append(str(block.get("type")) if isinstance(block, dict) else type(block).__name__)
    return " ".join(t.strip() for t in texts if t.strip()), images, others


# -- the nodes -----------------------------------------------------------------------------------------------


class ChatNodes:
    """The chat graph's nodes, bound to the injected models and the edit graph they run."""

    def __init__(
        self,
        *,
        planner: BaseChatModel | None,
        edit_graph: CompiledStateGraph,
        image_roots: Sequence[Path] | None = None,
        default_store_only: bool = False,
    ) -> None:
        self.planner = planner
        self.edit_graph = edit_graph
        self.image_roots = image_roots
        self.default_store_only = default_store_only  # a server's: no run may use another store

    def read_turn(self, state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Read the user's message: store its image as a new version, then classify what the words ask for."""
        context = run_context(runtime, self.default_store_only)
        store = context.store
        versions, current = list(state.get("versions", [])), state.get("current", 0)
        turn = state.get("turn", 0) + 1
        message = state["messages"][-1] if state.get("messages") else None
        update: dict[str, Any] = {"turn": 1, "request": {"action": "reply"}}

        def reply(text: str) -> dict[str, Any]:
            runtime.stream_writer({"event": "turn", "turn": turn, "action": "reply", "text": text})
            return {**update, "messages": [*update.get("messages", []), _answer(text)]}

        if not isinstance(message, HumanMessage):
            return reply("I answer the user's messages: send text, and an image to start.")
        text, images, others = split_content(message.content)
        if others:
            return reply(
                f"I can read text and one image per message, not {', '.join(sorted(set(others)))} blocks: "
                "nothing was changed."
            )
        if len(images) > 1:
            return reply(f"Send one image per message (this one has {len(images)}): nothing was changed.")
        if images:
            try:
                ref = import_image_input(store, images[0], roots=self.image_roots)
            except ImageError as error:
                return reply(f"I could not use that image: {error}. Nothing was changed.")
            version = Version(version=len(versions), image=ref, turn=turn, goal=None, score=None, parent=None)
            block = image_block(store, ref, version["version"])
            # The thread keeps the preview and the store id, not the pixels the client sent.
            kept = HumanMessage(content=[_text(text), block] if text else [block], id=message.id)
            update.update(
                versions=[version],
                current=version["version"],
                previous=[*state.get("previous", []), current] if versions else [],
                messages=[kept],
            )
            runtime.stream_writer({"event": "version", "version": version["version"], "image": ref["id"]})
            versions, current = [*versions, version], version["version"]
            if not text:
                return reply(
                    f"Got your image ({ref['width']}x{ref['height']}, version {version['version']}). "
                    "What should I change?"
                )
        if not text:
            return reply("Your message has no text: say what to change (and send an image to start).")
        if not versions:
            return reply(
                "Send an image first (with your message, as an image block), then say what to change."
            )
        model = self.planner if self.planner is not None else cached_chat_model(context.planner_model)
        request = classify_turn(
            model,
            text,
            versions=versions,
            current=current,
            may_switch=not images,
            hints=context.hints,
        )
        runtime.stream_writer({"event": "turn", "turn": turn, **request})
        return {**update, "request": request}

    def edit_turn(self, state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Run the edit graph on the current version with fresh budgets; add its result as a new version.

        On a plan review the subgraph interrupts and this node runs again on resume: everything before the
        subgraph call is free of side effects.
        """
        context = run_context(runtime, self.default_store_only)
        request, versions = state["request"], state["versions"]
        base = versions[state["current"]]
        if request["action"] == "plan_first":
            context = replace(context, approve_plan=True)
        values = self.edit_graph.invoke(
            {"image": base["image"]["id"], "goal": request["text"]},
            {"recursion_limit": recursion_limit(context)},
            context=context,
        )
        # The output has no plan_version; the plan in force is the last planning round's.
        trace = build_trace(
            {**values, "plan_version": values["plans"][-1]["version"] if values["plans"] else 0}
        )
        result: ImageRef = values["current"]
        update: dict[str, Any] = {}
        number = base["version"]
        if result["id"] != base["image"]["id"]:
            number = len(versions)
            version = Version(
                version=number,
                image=result,
                turn=state["turn"],
                goal=request["text"],
                score=trace["final_score"],
                parent=base["version"],
            )
            update = {
                "versions": [version],
                "current": number,
                "previous": [*state.get("previous", []), base["version"]],
            }
            runtime.stream_writer({"event": "version", "version": number, "image": result["id"]})
        text = summarize_edit(trace, number, changed=number != base["version"])
        return {**update, "messages": [_answer(text, image_block(context.store, result, number))]}

    def switch_version(self, state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Undo (back to the version shown before the last change) or show version N again."""
        context = run_context(runtime, self.default_store_only)
        request, versions = state["request"], state["versions"]
        current, previous = state["current"], list(state.get("previous", []))
        if request["action"] == "undo":
            if not previous:
                block = image_block(context.store, versions[current]["image"], current)
                return {
                    "messages": [_answer("There is nothing to undo yet: the image is as you sent it.", block)]
                }
            target, previous = previous[-1], previous[:-1]
            said = "Undone"
        else:
            target = request["version"]
            if target == current:
                block = image_block(context.store, versions[target]["image"], target)
                return {"messages": [_answer(f"Version {target} is the one shown now.", block)]}
            previous = [*previous, current]
            said = "Back"
        version = versions[target]
        made = f"made by the edit {json.dumps(version['goal'])}" if version["goal"] else "the image you sent"
        runtime.stream_writer({"event": "version", "version": target, "image": version["image"]["id"]})
        text = f"{said}: showing version {target} ({made}). Versions: {len(versions)}."
        block = image_block(context.store, version["image"], target)
        return {"current": target, "previous": previous, "messages": [_answer(text, block)]}


def classify_turn(
    model: BaseChatModel,
    text: str,
    *,
    versions: Sequence[Version],
    current: int,
    may_switch: bool = True,
    hints: bool = True,
) -> dict[str, Any]:
    """What a message asks for, by one structured-output call among the actions that can apply now.

    A turn that brings a new image edits it (`may_switch` False: edit or plan_first); otherwise all four are
    offered, even with nothing to undo ("undo that" is then answered as such, never run as an edit). A local
    model decodes among exactly these choices (and the version numbers), with `hints` preferring what the
    message names (`ACTION_LABELS`, `VERSION_LABELS`); any other model reads the allowed actions in its prompt,
    and an answer outside them, or none, is taken as an edit (recorded in the request's ``note``).
    """
    actions: list[str] = ["edit", "plan_first"] + (["undo", "go_to_version"] if may_switch else [])
    numbers = [v["version"] for v in versions]
    extra: dict[str, Any] = {}
    if takes_choices(model):
        extra = {
            "choices": {"action": actions, "version": numbers},
            "hint_text": text if hints else None,
            "labels": {
                **{a: ACTION_LABELS[a] for a in actions},
                **{n: VERSION_LABELS[n] for n in numbers if n < len(VERSION_LABELS)},
            },
        }
    task = prompts.CHAT_TURN_TASK.format(
        versions=prompts.format_versions(list(versions)), current=current, text=json.dumps(text)
    )
    system = prompts.CHAT_TURN_SYSTEM + f"\nAllowed actions now: {', '.join(actions)}."
    request: dict[str, Any] = {"action": "edit", "text": text, "version": current}
    try:
        answer = model.with_structured_output(TurnIntent, **extra).invoke(
            [SystemMessage(system), HumanMessage(task)]
        )
        intent = answer if isinstance(answer, TurnIntent) else TurnIntent.model_validate(answer)
    except Exception as error:  # a model that cannot answer: the turn is taken as what it most often is
        return {**request, "note": f"not classified: {type(error).__name__}: {error}"[:200]}
    if intent.action not in actions or (intent.action == "go_to_version" and intent.version not in numbers):
        return {**request, "note": f"answered {intent.action} (version {intent.version}), not allowed now"}
    return {**request, "action": intent.action, "version": intent.version}


def summarize_edit(trace: dict[str, Any], number: int, *, changed: bool) -> str:
    """The answer to an edit turn: the plan in a few lines, the verdict, and what was not managed."""
    steps = trace["plan"]["steps"]
    if not steps:
        return "I could not make a valid plan for that request, so the image is unchanged. Try other words."
    lines = ["Plan:"]
    for index, step in enumerate(steps, 1):
        accepted = [a for a in step["attempts"] if a["accepted"]]
        done = (
            f" -> {accepted[-1]['tool']} ({accepted[-1]['args'].get('region')})"
            if accepted
            else " -> not done"
        )
        lines.append(f"{index}. {step['instruction']}{done}")
    score = trace["final_score"]
    verdict = "passed" if trace["status"] == "passed" else "not passed"
    judged = f"judged {score:.2f} ({verdict})" if score is not None else "not judged (the judge failed)"
    lines.append(f"Result: version {number}, {judged}." if changed else f"The image is unchanged; {judged}.")
    checklist = {item["id"]: item["text"] for item in trace["plan"]["checklist"]}
    missed = [
        checklist.get(item["id"], item["id"])
        for item in (trace["final_verdict"] or {}).get("checklist", [])
        if not item["passed"]
    ]
    missed += [f"step {step['id']} ({step['instruction']})" for step in steps if not step["accepted"]]
    if missed:
        lines.append("Not managed: " + "; ".join(dict.fromkeys(missed)) + ".")
    return "\n".join(lines)


def route_after_read_turn(state: ChatState) -> Literal["edit", "switch", "reply"]:
    """Edits go to the edit graph, undo and go-to to the version switch; answered turns end."""
    action = state["request"]["action"]
    if action in ("edit", "plan_first"):
        return "edit"
    return "switch" if action in ("undo", "go_to_version") else "reply"


def build_chat_graph(
    *,
    planner: BaseChatModel | None = None,
    orchestrator: BaseChatModel | None = None,
    judge: Judge | None = None,
    tools: Sequence[BaseTool] | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    image_roots: Sequence[Path] | None = None,
    default_store_only: bool = False,
) -> CompiledStateGraph:
    """Build the chat graph. Models, judge and tools are the edit graph's (`build_graph`); the planner model also
    classifies the turns. Not given, they resolve from the run's `Context`. A thread needs a checkpointer (the
    versions live in it): pass one, or let `langgraph dev` bring its own. `image_roots`, `default_store_only` as for
    `build_graph`
    (a server passes `()`: an image block's url can never name a file of the server's)."""
    edit_graph = build_graph(
        planner=planner,
        orchestrator=orchestrator,
        judge=judge,
        tools=tools,
        image_roots=image_roots,
        default_store_only=default_store_only,
    )
    nodes = ChatNodes(
        planner=planner, edit_graph=edit_graph, image_roots=image_roots, default_store_only=default_store_only
    )
    builder = StateGraph(ChatState, context_schema=Context, input_schema=ChatInput, output_schema=ChatOutput)
    builder.add_node("read_turn", nodes.read_turn)
    builder.add_node("edit_turn", nodes.edit_turn)
    builder.add_node("switch_version", nodes.switch_version)
    builder.add_edge(START, "read_turn")
    builder.add_conditional_edges(
        "read_turn", route_after_read_turn, {"edit": "edit_turn", "switch": "switch_version", "reply": END}
    )
    builder.add_edge("edit_turn", END)
    builder.add_edge("switch_version", END)
    return builder.compile(checkpointer=checkpointer, name="chat")
