"""`pixplan ui`: a local web app to edit an image from a goal: upload, goal, streamed progress, plan approval,
before/after, versions, undo, download.

Why Gradio: its chat component takes the same role/content messages as LangChain, with images inside them and
collapsible "thought" messages for progress; a generator handler streams each graph event to the page as it
happens; image upload, gallery and download components come ready; it runs on 127.0.0.1 with no front-end
build; and it is what this field's model demos are made with, so users know the page. (Streamlit reruns the
whole script on every click, which fits a paused plan approval badly; a hand-written page would be more code
to keep.)

The page is a chat client of the chat graph (`pixplan.graph.chat`), one thread per browser tab: every action
is a human turn, as a user would type it ("undo", "go to the second version"), the graph streams its progress
events, interrupts for the plan and resumes with `Command(resume=...)`, and keeps the versions; this module
only renders what the thread holds. Importing it loads neither gradio nor torch (gradio loads in `build_app`,
models on the first turn).
"""

from __future__ import annotations

import argparse
import base64
import json
import mimetypes
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixplan.graph.context import Context, add_context_arguments, context_settings, default_db_path

INTRO = (
    "# pixplan: edit an image from a goal\n"
    '**1.** Upload an image. **2.** Say what you want (*"make the headline stand out"*) and press **Edit**. '
    "pixplan plans the edit as a checklist and steps, runs a tool on a region for each step and judges every "
    "result; you watch it happen in the conversation. Tick *Show me the plan first* to approve or change the "
    "plan before anything is edited. Each result is a new version: **Undo** goes back one, clicking a "
    "version goes back to it, and the next goal edits the version you see."
)

#: Small images in the conversation: Before and After below show them large.
CSS = "#chat img {max-height: 220px; width: auto; object-fit: contain;}"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="start the web app (upload an image, type a goal, watch the edit, approve the plan, undo)",
        description=(
            "Start a local web app over pixplan's chat graph: upload an image, type a goal, watch the plan "
            "and each step stream in, approve or edit the plan, compare before and after, go back through "
            "versions, download the result. Needs the ui extra: pip install 'pixplan[ui]'."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default: 7860)")
    parser.add_argument(
        "--db",
        help="checkpoints: a SQLite file (default: checkpoints.sqlite beside the store) or a postgresql:// URL",
    )
    add_context_arguments(parser)
    parser.set_defaults(func=run_ui)


def run_ui(args: argparse.Namespace) -> int:
    from pixplan.graph.api import check_db, check_specs, open_checkpointer, redact_url

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be from 1 to 65535, got {args.port}")
    context = Context(**context_settings(args))
    check_specs(context)
    db = check_db(args.db or default_db_path(context.store_dir))
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise SystemExit("pixplan ui: needs gradio: pip install 'pixplan[ui]'") from None
    with open_checkpointer(db) as saver:
        assistant = Assistant(context=context, checkpointer=saver)
        app = build_app(assistant)
        where = f"store {context.store_dir}, checkpoints {redact_url(str(db))}"
        print(f"pixplan ui on http://{args.host}:{args.port} ({where})", flush=True)
        app.queue(default_concurrency_limit=1).launch(
            server_name=args.host,
            server_port=args.port,
            allowed_paths=[str(context.store.root)],
            theme="default",
            css=CSS,
            show_error=True,
            quiet=True,
        )
    return 0


# -- the assistant: the chat graph and its threads -----------------------------------------------------------


@dataclass
class Assistant:
    """The app's one compiled chat graph and checkpointer, and the settings every turn runs with."""

    context: Context
    checkpointer: Any
    graph: Any = field(init=False)
    approving: Context = field(init=False)  # the same settings, pausing every edit for the plan

    def __post_init__(self) -> None:
        from dataclasses import replace

        from pixplan.graph.chat import build_chat_graph

        self.graph = build_chat_graph(checkpointer=self.checkpointer)
        self.approving = replace(self.context, approve_plan=True)

    @property
    def store(self):
        return self.context.store

    def stream(self, thread_id: str, payload: Any, *, approve: bool) -> Iterator[tuple[str, Any]]:
        """Run a turn of the thread, or resume it: yields ("event", progress event) as they happen (the edit
        graph's and the chat's own), then ("interrupt", request) when the plan awaits approval, else ("done",
        the thread's state values)."""
        config = {"configurable": {"thread_id": thread_id}}
        context = self.approving if approve else self.context
        for _namespace, _mode, event in self.graph.stream(
            payload, config, context=context, stream_mode=["custom"], subgraphs=True
        ):
            yield "event", event
        snapshot = self.graph.get_state(config)
        if snapshot.interrupts:
            yield "interrupt", snapshot.interrupts[0].value
        else:
            yield "done", snapshot.values


def new_session() -> dict[str, Any]:
    """What the page keeps per browser tab: its thread, the new image not sent yet, the plan it waits for."""
    return {"thread": None, "upload": None, "approve": False, "waiting": False, "plan": None, "seen": 0}


def human_turn(text: str, image: str | None = None) -> dict[str, Any]:
    """A turn's input: the text and, when the user uploaded a new image, a standard base64 image block."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if image is not None:
        mime = mimetypes.guess_type(image)[0] or "image/png"
        data = base64.b64encode(Path(image).read_bytes()).decode()
        content.append({"type": "image", "base64": data, "mime_type": mime})
    from langchain_core.messages import HumanMessage

    return {"messages": [HumanMessage(content=content)]}


ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def go_to_text(number: int) -> str:
    """The turn a click on a version sends, worded as a user would."""
    if number < len(ORDINALS):
        return f"go to the {ORDINALS[number]} version (version {number})"
    return f"go to version {number}"


# -- rendering -----------------------------------------------------------------------------------------------


def plan_lines(plan: dict[str, Any]) -> list[str]:
    lines = [f"- checklist {item['id']}: {item['text']}" for item in plan["checklist"]]
    lines += [
        f"- step {step['id']}: {step['instruction']}"
        + (f" (tool {step['tool']})" if step.get("tool") else "")
        for step in plan["steps"]
    ]
    return lines


def event_line(event: dict[str, Any]) -> str | None:
    """One progress line per event: the edit graph's as `pixplan edit` prints them, the chat's own here."""
    from pixplan.graph.cli import format_event

    kind = event.get("event")
    if kind == "turn":
        action = event.get("action")
        if action == "go_to_version":
            return f"read as: go to version {event.get('version')}"
        return None if action == "reply" else f"read as: {str(action).replace('_', ' ')}"
    if kind == "version":
        return f"showing version {event['version']}"
    return format_event(event)


def version_label(version: dict[str, Any], current: int) -> str:
    made = "your image" if version["goal"] is None else version["goal"][:36]
    score = "" if version["score"] is None else f" ({version['score']:.2f})"
    return f"{'▶ ' if version['version'] == current else ''}v{version['version']}: {made}{score}"


# -- the page ------------------------------------------------------------------------------------------------


def build_app(assistant: Assistant):
    """The Gradio page over `assistant`."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr
    from langgraph.types import Command

    from pixplan.graph.chat import split_content
    from pixplan.tools.calls import error_text

    store = assistant.store

    def thread_values(session: dict[str, Any]) -> dict[str, Any]:
        if session["thread"] is None:
            return {}
        return assistant.graph.get_state({"configurable": {"thread_id": session["thread"]}}).values

    def message_items(message: Any) -> list[dict[str, Any]]:
        """A thread message as chat items: its text, then its image (the full one, from the store)."""
        role = "user" if message.type == "human" else "assistant"
        text, images, _ = split_content(message.content)
        items = [{"role": role, "content": text}] if text else []
        items += [
            {"role": role, "content": {"path": str(store.path(block["file_id"]))}}
            for block in images
            if block.get("file_id") in store
        ]
        return items

    def view(session: dict[str, Any], chat: list, status: str, *, busy: bool = False) -> dict:
        """Every output of the page from the session and its thread (one place decides what the page shows);
        while a turn runs (`busy`) the buttons that start one are off."""
        values = thread_values(session)
        versions, current = values.get("versions", []), values.get("current", 0)
        shown = versions[current] if versions else None
        parent = None if shown is None or shown["parent"] is None else versions[shown["parent"]]
        after = None if shown is None else str(store.path(shown["image"]["id"]))
        return {
            chat_box: chat,
            after_image: after,
            before_image: None if parent is None else str(store.path(parent["image"]["id"])),
            versions_box: [(str(store.path(v["image"]["id"])), version_label(v, current)) for v in versions],
            download: gr.DownloadButton(value=after, interactive=after is not None),
            # Undo only where the thread has a change to take back: else the words would be read as an edit.
            undo_button: gr.Button(interactive=not busy and bool(values.get("previous"))),
            send_button: gr.Button(interactive=not busy),
            approve_button: gr.Button(interactive=not busy),
            plan_group: gr.Group(visible=session["waiting"]),
            status_box: status,
            state: session,
        }

    def run(session: dict[str, Any], chat: list, payload: Any) -> Iterator[dict]:
        """Stream one run of the thread into the conversation: a progress message that grows line by line,
        then the assistant's answer (or the plan, when it waits for approval)."""
        progress = {
            "role": "assistant",
            "content": "",
            "metadata": {"title": "Working…", "status": "pending"},
        }
        chat = [*chat, progress]
        lines: list[str] = []
        yield view(session, chat, "working…", busy=True)
        try:
            for kind, value in assistant.stream(session["thread"], payload, approve=session["approve"]):
                if kind == "event":
                    line = event_line(value)
                    if line is not None:
                        lines.append(line)
                        progress["content"] = "\n".join(lines)
                        first = line.strip().splitlines()[0]
                        progress["metadata"]["title"] = "Working: " + first[:80]
                        yield view(session, chat, first[:120], busy=True)
                elif kind == "interrupt":
                    session.update(waiting=True, plan=value["plan"])
                    progress["metadata"] = {"title": "Planned: waiting for your approval"}  # left open
                    text = "Here is the plan. Run it as it is, or edit it (JSON) and run that:\n"
                    text += "\n".join(plan_lines(value["plan"]))
                    text += f"\n\nNot valid: {value['error']}" if value.get("error") else ""
                    chat.append({"role": "assistant", "content": text})
                    plan = json.dumps(value["plan"], indent=1)
                    yield {**view(session, chat, "waiting for your approval"), plan_box: plan}
                else:
                    progress["metadata"] = {"title": "What happened"}  # left open: the steps stay readable
                    if not lines:
                        chat.remove(progress)
                    for message in value["messages"][session["seen"] :]:
                        if message.type == "ai":
                            chat.extend(message_items(message))
                    session["seen"] = len(value["messages"])
                    yield view(session, chat, f"showing version {value.get('current', 0)}")
        except Exception as error:  # shown on the page; the server log has the traceback
            import traceback

            traceback.print_exc()
            session.update(waiting=False)
            progress["metadata"] = {"title": "Stopped by an error"}
            chat.append({"role": "assistant", "content": f"The turn stopped: {error_text(error)}"})
            yield view(session, chat, f"error: {error_text(error)}")

    def send(session: dict[str, Any], chat: list, text: str, image: str | None = None) -> Iterator[dict]:
        if session["waiting"]:
            yield view(session, chat, "a plan is waiting for your approval: run it first")
            return
        session["thread"] = session["thread"] or uuid.uuid4().hex[:12]
        session["seen"] = (
            len(thread_values(session).get("messages", [])) + 1
        )  # the answers come after this turn
        chat = [*chat, {"role": "user", "content": text}]
        if image is not None:
            chat.append({"role": "user", "content": {"path": image}})
        yield from run(session, chat, human_turn(text, image))

    def on_upload(session: dict[str, Any], image: str | None) -> dict:
        session["upload"] = image
        return {state: session}

    def on_send(session, image, goal, plan_first, chat) -> Iterator[dict]:
        goal = (goal or "").strip()
        if not goal:
            yield view(session, chat, "type a goal first")
            return
        new_image = session["upload"]  # an image uploaded since the last turn goes with this one
        if not thread_values(session).get("versions"):
            new_image = new_image or image
            if new_image is None:
                yield view(session, chat, "upload an image first")
                return
        session.update(upload=None, approve=bool(plan_first))
        yield from send(session, chat, goal, new_image)

    def on_approve(session, plan_text, chat) -> Iterator[dict]:
        if not session["waiting"]:
            yield view(session, chat, "no plan is waiting")
            return
        text = (plan_text or "").strip()
        try:
            decision = True if not text else json.loads(text)
        except json.JSONDecodeError as error:
            yield view(session, chat, f"the plan is not valid JSON: {error}")
            return
        decision = True if decision == session["plan"] else decision
        session["waiting"] = False
        chat = [*chat, {"role": "user", "content": "Run this plan." if decision is True else "Run my plan."}]
        yield from run(session, chat, Command(resume=decision))

    def on_undo(session, chat) -> Iterator[dict]:
        yield from send(session, chat, "undo")

    def on_select(session, chat, event: gr.SelectData) -> Iterator[dict]:
        if event.index == thread_values(session).get("current"):
            yield view(session, chat, f"showing version {event.index}")
            return
        yield from send(session, chat, go_to_text(event.index))

    # Gradio finds the SelectData argument by its annotation, which `from __future__ import annotations` made
    # a string it cannot resolve here.
    on_select.__annotations__["event"] = gr.SelectData

    with gr.Blocks(title="pixplan") as app:
        state = gr.State(new_session())
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=2):
                input_image = gr.Image(
                    label="1. Your image",
                    type="filepath",
                    sources=["upload", "clipboard"],
                    elem_id="input-image",
                )
                goal_box = gr.Textbox(
                    label="2. Goal", placeholder="make the headline stand out", elem_id="goal", lines=2
                )
                plan_first = gr.Checkbox(
                    label="Show me the plan first", value=assistant.context.approve_plan, elem_id="plan-first"
                )
                send_button = gr.Button("Edit", variant="primary", elem_id="send")
                status_box = gr.Textbox(label="Status", interactive=False, elem_id="status")
                with gr.Group(visible=False, elem_id="plan-group") as plan_group:
                    plan_box = gr.Textbox(
                        label="Plan (JSON): edit it if you like", lines=14, elem_id="plan", interactive=True
                    )
                    approve_button = gr.Button("Run this plan", variant="primary", elem_id="approve")
            with gr.Column(scale=3):
                chat_box = gr.Chatbot(
                    label="Conversation", height=600, elem_id="chat", buttons=["copy"], render_markdown=False
                )
        with gr.Row():
            before_image = gr.Image(
                label="Before (what it was edited from)", interactive=False, elem_id="before", height=320
            )
            after_image = gr.Image(
                label="After (current version)", interactive=False, elem_id="after", height=320
            )
        with gr.Row():
            versions_box = gr.Gallery(
                label="Versions: click one to go back to it",
                columns=6,
                fit_columns=False,
                object_fit="contain",
                height=230,
                allow_preview=False,
                elem_id="versions",
                scale=4,
            )
            with gr.Column(scale=1):
                undo_button = gr.Button("Undo", interactive=False, elem_id="undo")
                download = gr.DownloadButton("Download result", interactive=False, elem_id="download")

        outputs = [
            chat_box, after_image, before_image, versions_box, download, undo_button, send_button,
            approve_button, plan_group, plan_box, status_box, state,
        ]  # fmt: skip
        input_image.upload(on_upload, [state, input_image], [state])
        for trigger in (send_button.click, goal_box.submit):
            trigger(on_send, [state, input_image, goal_box, plan_first, chat_box], outputs)
        approve_button.click(on_approve, [state, plan_box, chat_box], outputs)
        undo_button.click(on_undo, [state, chat_box], outputs)
        versions_box.select(on_select, [state, chat_box], outputs)
    return app
