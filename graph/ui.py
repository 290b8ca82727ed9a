"""`pixplan ui`: a local web app to edit an image from a goal: upload, goal, streamed progress, plan approval,
before/after, versions, undo, download.

Why Gradio: its chat component takes the same role/content messages as LangChain, with images inside them and
collapsible "thought" messages for progress; a generator handler streams each graph event to the page as it
happens; image upload, gallery and download components come ready; it runs on 127.0.0.1 with no front-end build;
and it is what this field's model demos are made with, so users know the page. (Streamlit reruns the whole script
on every click, which fits a paused plan approval badly; a hand-written page would be more code to keep.)

The page is a thin shell over the graph: the graph streams, interrupts for the plan and resumes with
`Command(resume=...)`; this module only renders. Importing it loads neither gradio nor torch (gradio loads in
`build_app`, models on the first turn).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pixplan.graph.context import Context, add_context_arguments, context_settings, default_db_path

INTRO = (
    "# pixplan: edit an image from a goal\n"
    "**1.** Upload an image. **2.** Say what you want (*\"make the headline stand out\"*) and press **Edit**. "
    "pixplan plans the edit as a checklist and steps, runs a tool on a region for each step and judges every "
    "result; you watch it happen in the conversation. Tick *Show me the plan first* to approve or change the "
    "plan before anything is edited. Each result is a new version: **Undo** goes back one, clicking a version "
    "goes back to it, and the next goal edits the version you see."
)

#: Small result images in the conversation (before/after below show them large); progress lines as a log.
CSS = """
#chat img {max-height: 220px; width: auto; object-fit: contain;}
#chat .message-content p, #chat .message-content li {font-size: 14px;}
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="start the web app (upload an image, type a goal, watch the edit, approve the plan, undo)",
        description=(
            "Start a local web app over pixplan's graph: upload an image, type a goal, watch the plan and each "
            "step stream in, approve or edit the plan, compare before and after, go back through versions, "
            "download the result. Needs the ui extra: pip install 'pixplan[ui]'."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default: 7860)")
    parser.add_argument(
        "--db",
        help="checkpoints: a SQLite file (default: checkpoints.sqlite beside the store) or a "
        "postgresql://user@host/db URL (needs the postgres extra)",
    )
    add_context_arguments(parser)
    parser.set_defaults(func=run_ui)


def run_ui(args: argparse.Namespace) -> int:
    from pixplan.graph.api import check_db, check_specs

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be from 1 to 65535, got {args.port}")
    context = Context(**context_settings(args))
    check_specs(context)
    db = check_db(args.db or default_db_path(context.store_dir))
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise SystemExit("pixplan ui: needs gradio: pip install 'pixplan[ui]'") from None
    from pixplan.graph.api import open_checkpointer, redact_url

    with open_checkpointer(db) as saver:
        assistant = Assistant(context=context, checkpointer=saver)
        app = build_app(assistant)
        print(
            f"pixplan ui on http://{args.host}:{args.port} (store {context.store_dir}, checkpoints "
            f"{redact_url(str(db))})"
        )
        sys.stdout.flush()
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


# -- the assistant: the graph, its threads and the versions of the conversation ------------------------------


@dataclass
class Assistant:
    """The app's one compiled graph and checkpointer, and the settings every turn runs with."""

    context: Context
    checkpointer: Any
    graph: Any = field(init=False)
    approving: Context = field(init=False)  # the same settings, pausing for the plan

    def __post_init__(self) -> None:
        from dataclasses import replace

        from pixplan.graph.builder import build_graph

        self.graph = build_graph(checkpointer=self.checkpointer)
        self.approving = replace(self.context, approve_plan=True)
        self.approving.__dict__["store"] = self.context.store  # one store for the app (a cached property)

    @property
    def store(self):
        return self.context.store

    def stream(self, thread_id: str, payload: Any, *, approve: bool) -> Iterator[tuple[str, Any]]:
        """Run or resume a thread: yields ("event", progress event) as they happen, then ("interrupt", request)
        when the plan awaits approval, or ("done", the final state values)."""
        from pixplan.graph.api import recursion_limit

        context = self.approving if approve else self.context
        config = {"configurable": {"thread_id": thread_id}, "recursion_limit": recursion_limit(context)}
        pending = None
        for mode, chunk in self.graph.stream(
            payload, config, context=context, stream_mode=["custom", "updates"], durability="sync"
        ):
            if mode == "custom":
                yield "event", chunk
            elif "__interrupt__" in chunk:
                pending = chunk["__interrupt__"][0].value
        if pending is not None:
            yield "interrupt", pending
        else:
            yield "done", self.graph.get_state(config).values


def new_session() -> dict[str, Any]:
    """What the page keeps per browser tab: the versions (image ids) and what the tab is waiting for."""
    return {"versions": [], "current": None, "thread": None, "approve": False, "waiting": False, "upload": None,
            "plan": None}


def _version_label(number: int, version: dict[str, Any]) -> str:
    if version["goal"] is None:
        return f"v{number}: your upload"
    score = "" if version["score"] is None else f", score {version['score']:.2f}"
    return f"v{number}: {version['goal'][:40]}{score}"


# -- rendering ------------------------------------------------------------------------------------------------


def plan_lines(plan: dict[str, Any]) -> list[str]:
    lines = [f"- checklist {item['id']}: {item['text']}" for item in plan["checklist"]]
    lines += [
        f"- step {step['id']}: {step['instruction']}" + (f" (tool {step['tool']})" if step.get("tool") else "")
        for step in plan["steps"]
    ]
    return lines


def answer_text(values: dict[str, Any]) -> str:
    """The assistant's answer after a turn: the verdict, the plan in a few lines, what was not managed."""
    from pixplan.graph.trace import build_trace

    trace = build_trace(values)
    score = "no verdict" if trace["final_score"] is None else f"score {trace['final_score']:.2f}"
    accepted = [step for step in trace["plan"]["steps"] if step["accepted"]]
    lines = [
        f"**Done: {trace['status']}** ({score}; {len(accepted)} of {len(trace['plan']['steps'])} steps kept)."
    ]
    lines += plan_lines(trace["plan"])
    final = trace["final_verdict"] or {}
    missed = [item for item in final.get("checklist", []) if not item["passed"]]
    if missed:
        lines.append("Not managed: " + "; ".join(f"{item['id']} ({item['reason']})" for item in missed))
    if trace["result"]["id"] == trace["original"]["id"]:
        lines.append("No step was kept, so the image is unchanged.")
    return "\n".join(lines)


# -- the page -------------------------------------------------------------------------------------------------


def build_app(assistant: Assistant):
    """The Gradio page over `assistant`."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr
    from langgraph.types import Command

    from pixplan.graph.cli import format_event
    from pixplan.tools.calls import error_text

    store = assistant.store

    def path_of(image_id: str | None) -> str | None:
        return None if image_id is None else str(store.path(image_id))

    def gallery(session: dict[str, Any]) -> list[tuple[str, str]]:
        return [
            (path_of(version["image"]), _version_label(number, version))
            for number, version in enumerate(session["versions"])
        ]

    def view(session: dict[str, Any], chat: list, *, before: str | None = None, status: str = "") -> dict:
        """Every output of the page from the session (one place that decides what the page shows)."""
        current = path_of(session["current"])
        updates = {
            chat_box: chat,
            after_image: current,
            versions_box: gallery(session),
            download: gr.DownloadButton(value=current, interactive=current is not None),
            undo_button: gr.Button(interactive=len(session["versions"]) > 1),
            plan_group: gr.Group(visible=session["waiting"]),
            status_box: status,
            state: session,
        }
        if before is not None:
            updates[before_image] = before
        return updates

    def run(session: dict[str, Any], chat: list, payload: Any, before: str | None) -> Iterator[dict]:
        """Stream one run of the thread into the conversation: a progress message that grows line by line,
        then the answer with the result image (or the plan, when it waits for approval)."""
        progress = {"role": "assistant", "content": "", "metadata": {"title": "Working…", "status": "pending"}}
        chat = [*chat, progress]
        yield view(session, chat, before=before, status="working…")
        try:
            yield from stream(session, chat, payload, progress)
        except Exception as error:  # shown on the page; the server log has the traceback
            import traceback

            traceback.print_exc()
            session.update(thread=None, waiting=False)
            progress["metadata"] = {"title": "Stopped by an error"}
            chat.append({"role": "assistant", "content": f"The edit stopped: {error_text(error)}"})
            yield view(session, chat, status=f"error: {error_text(error)}")

    def stream(session: dict[str, Any], chat: list, payload: Any, progress: dict) -> Iterator[dict]:
        lines: list[str] = []
        for kind, value in assistant.stream(session["thread"], payload, approve=session["approve"]):
            if kind == "event":
                line = format_event(value)
                if line is None:
                    continue
                lines.append(line)
                progress["content"] = "\n".join(lines)
                progress["metadata"]["title"] = "Working: " + line.strip().splitlines()[0][:80]
                yield view(session, chat, status=line.strip().splitlines()[0][:120])
            elif kind == "interrupt":
                session.update(waiting=True, plan=value["plan"])
                progress["metadata"] = {"title": "Planned: waiting for your approval"}  # left open
                note = value.get("error")
                text = "Here is the plan. Run it as it is, or edit it (JSON) and run that:\n" + "\n".join(
                    plan_lines(value["plan"])
                )
                chat.append({"role": "assistant", "content": text + (f"\n\nNot valid: {note}" if note else "")})
                yield {
                    **view(session, chat, status="waiting for your approval"),
                    plan_box: json.dumps(value["plan"], indent=1),
                }
                return
            else:
                result = value["current"]["id"]
                goal = value["goal"]
                score = None
                if value.get("final_verdict") is not None:
                    from pixplan.graph.trace import build_trace

                    score = build_trace(value)["final_score"]
                session["versions"].append({"image": result, "goal": goal, "score": score})
                session["current"] = result
                session["thread"] = None
                progress["metadata"] = {"title": "What happened"}  # left open: the steps stay readable
                chat.append({"role": "assistant", "content": answer_text(value)})
                chat.append({"role": "assistant", "content": {"path": path_of(result)}})
                yield view(session, chat, status=f"done: v{len(session['versions']) - 1}")

    def on_upload(session: dict[str, Any], image: str | None) -> dict:
        session["upload"] = image
        return {state: session}

    def on_send(session, image, goal, plan_first, chat) -> Iterator[dict]:
        goal = (goal or "").strip()
        if session["thread"] is not None:
            yield view(session, chat, status="a plan is waiting for your approval: run it first")
            return
        if not goal:
            yield view(session, chat, status="type a goal first")
            return
        if session["upload"] is not None or session["current"] is None:
            if image is None:
                yield view(session, chat, status="upload an image first")
                return
            ref = store.put_file(image)
            session["versions"] = [{"image": ref["id"], "goal": None, "score": None}]
            session["current"] = ref["id"]
            session["upload"] = None
            chat = [*chat, {"role": "user", "content": {"path": path_of(ref["id"])}}]
        chat = [*chat, {"role": "user", "content": goal}]
        session["thread"] = uuid.uuid4().hex[:12]
        session["approve"] = bool(plan_first)
        yield from run(session, chat, {"image": session["current"], "goal": goal}, path_of(session["current"]))

    def on_approve(session, plan_text, chat) -> Iterator[dict]:
        if not session["waiting"]:
            yield view(session, chat, status="no plan is waiting")
            return
        text = (plan_text or "").strip()
        try:
            decision = True if not text else json.loads(text)
            decision = True if decision == session["plan"] else decision
        except json.JSONDecodeError as error:
            yield view(session, chat, status=f"the plan is not valid JSON: {error}")
            return
        session["waiting"] = False
        chat = [*chat, {"role": "user", "content": "Run this plan." if decision is True else "Run my plan."}]
        yield from run(session, chat, Command(resume=decision), None)

    def go_to(session: dict[str, Any], chat: list, index: int, words: str) -> dict:
        version = session["versions"][index]
        session["current"] = version["image"]
        chat = [*chat, {"role": "assistant", "content": f"{words}: v{index} is the current image."}]
        return view(session, chat, status=f"current: v{index}")

    def on_undo(session, chat) -> dict:
        numbers = [i for i, v in enumerate(session["versions"]) if v["image"] == session["current"]]
        if not numbers or numbers[-1] == 0:
            return view(session, chat, status="nothing to undo")
        return go_to(session, chat, numbers[-1] - 1, "Undone")

    def on_select(session, chat, event: gr.SelectData) -> dict:
        return go_to(session, chat, event.index, "Back to an earlier version")

    # Gradio finds the SelectData argument by its annotation, which `from __future__ import annotations` made a
    # string it cannot resolve here.
    on_select.__annotations__["event"] = gr.SelectData

    with gr.Blocks(title="pixplan") as app:
        state = gr.State(new_session())
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=2):
                input_image = gr.Image(
                    label="1. Your image", type="filepath", sources=["upload", "clipboard"], elem_id="input-image"
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
                chat_box = gr.Chatbot(label="Conversation", height=600, elem_id="chat", buttons=["copy"])
        with gr.Row():
            before_image = gr.Image(label="Before", interactive=False, elem_id="before", height=320)
            after_image = gr.Image(label="After (current version)", interactive=False, elem_id="after", height=320)
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
            chat_box, after_image, before_image, versions_box, download, undo_button, plan_group, plan_box,
            status_box, state,
        ]  # fmt: skip
        input_image.upload(on_upload, [state, input_image], [state])
        for trigger in (send_button.click, goal_box.submit):
            trigger(on_send, [state, input_image, goal_box, plan_first, chat_box], outputs)
        approve_button.click(on_approve, [state, plan_box, chat_box], outputs)
        undo_button.click(on_undo, [state, chat_box], outputs)
        versions_box.select(on_select, [state, chat_box], outputs)
    return app
