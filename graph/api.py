"""`edit(image, goal, **settings)`: one call that runs the graph with SQLite checkpoints and writes the results.

```python
from pixplan.graph import edit

result = edit("ad.png", "give this coffee ad a cosy autumn feel", output="autumn.png")
result.status, result.score, result.trace["plan"]["checklist"]
```
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command
from PIL import Image

from pixplan.graph.builder import build_graph
from pixplan.graph.context import Context, default_db_path
from pixplan.graph.schemas import Judge
from pixplan.graph.trace import build_trace, contact_sheet, write_trace
from pixplan.tools.image_input import import_image_input
from pixplan.tools.store import IMAGE_SUFFIXES, ImageRef, ImageStore, check_output_path, save_image

#: on_event(event): progress events as they stream (see `EditNodes`: planned, step_started, tool_chosen, ...).
EventHandler = Callable[[dict[str, Any]], None]
#: review(request) -> True to accept the plan, or an edited plan as a dict.
PlanReviewer = Callable[[dict[str, Any]], Any]


class EditError(ValueError):
    """An edit cannot start: no image or goal, or no run to resume under that thread id."""


@dataclass
class EditResult:
    """The outcome of an edit: the result image (by reference), the trace, and where things were written."""

    ref: ImageRef
    trace: dict[str, Any]
    thread_id: str
    store: ImageStore
    output: Path | None = None
    trace_path: Path | None = None
    sheet_path: Path | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def image(self) -> Image.Image:
        return self.store.get(self.ref["id"])

    @property
    def status(self) -> str:
        return self.trace["status"]

    @property
    def score(self) -> float | None:
        return self.trace["final_score"]


def recursion_limit(context: Context) -> int:
    """Enough super-steps for every bounded loop to run out (the routers end the run well before)."""
    per_attempt = 2 * context.max_tool_errors + 2
    per_round = context.max_steps * (context.max_retries_per_step + 1) * per_attempt + 4
    return (context.max_replans + 1) * per_round + 10


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(db: str | Path) -> bool:
    """Whether a `--db` value names a PostgreSQL server rather than a SQLite file."""
    return str(db).startswith(POSTGRES_SCHEMES)


def redact_url(url: str) -> str:
    """A database URL fit for an error message: the password replaced by ***."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def check_db_path(path: str | Path) -> Path:
    """The checkpoint file of a run, checked before any work: a folder or a file that is not SQLite is an
    `EditError` now, before anything is created."""
    path = Path(path)
    if path.is_dir():
        raise EditError(
            f"--db {path} is a directory; give a SQLite file such as {path / 'checkpoints.sqlite'}"
        )
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise EditError(f"--db {path} is not a SQLite database")
    return path


def check_db(db: str | Path) -> str | Path:
    """A `--db` value checked before any work: a Postgres URL that parses (nothing is connected yet), or a
    SQLite path (`check_db_path`)."""
    if not is_postgres_url(db):
        return check_db_path(db)
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise EditError(
            "--db postgresql://... needs the postgres extra: pip install 'pixplan[postgres]'"
        ) from None
    import psycopg

    try:
        conninfo_to_dict(str(db))
    except psycopg.Error as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EditError(f"--db {redact_url(str(db))} is not a valid PostgreSQL URL: {message}") from None
    return str(db)


@contextmanager
def sqlite_checkpointer(path: str | Path) -> Iterator[BaseCheckpointSaver]:
    """A SQLite checkpointer on a file (created with its folder), closed afterwards."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = check_db_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(str(path), check_same_thread=False)
    # WAL with synchronous=NORMAL: a committed checkpoint survives a killed process (it may not survive a power
    # cut), and each step skips an fsync.
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.DatabaseError as error:
        connection.close()
        raise EditError(f"--db {path}: {error}") from None
    try:
        yield SqliteSaver(connection)
    finally:
        connection.close()


def _connect_error(url: str, error: Exception) -> EditError:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return EditError(
        f"--db {redact_url(url)}: cannot connect ({lines[0] if lines else type(error).__name__})"
    )


# autocommit and dict rows are what the Postgres savers expect of a connection they did not open themselves.
_PG_CONNECTION = {"autocommit": True, "prepare_threshold": 0}


@contextmanager
def postgres_checkpointer(url: str, *, connect_timeout_s: int = 10) -> Iterator[BaseCheckpointSaver]:
    """A PostgreSQL checkpointer (`langgraph-checkpoint-postgres`) on one connection, tables set up, closed
    afterwards. An unreachable server or a refused login is an `EditError` of one line."""
    url = str(check_db(url))
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    try:
        connection = psycopg.connect(
            url, **_PG_CONNECTION, row_factory=dict_row, connect_timeout=connect_timeout_s
        )
    except psycopg.Error as error:
        raise _connect_error(url, error) from None
    try:
        saver = PostgresSaver(connection)
        saver.setup()  # creates or migrates the tables; a no-op when they are current
        yield saver
    finally:
        connection.close()


@contextlib.asynccontextmanager
async def async_postgres_checkpointer(
    url: str, *, connect_timeout_s: int = 10
) -> AsyncIterator[BaseCheckpointSaver]:
    """`postgres_checkpointer` for async hosts (the LangGraph server's custom checkpointer, graph/server.py)."""
    url = str(check_db(url))
    import psycopg
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row

    try:
        connection = await psycopg.AsyncConnection.connect(
            url, **_PG_CONNECTION, row_factory=dict_row, connect_timeout=connect_timeout_s
        )
    except psycopg.Error as error:
        raise _connect_error(url, error) from None
    try:
        saver = AsyncPostgresSaver(connection)
        await saver.setup()
        yield saver
    finally:
        await connection.close()


def open_checkpointer(db: str | Path) -> contextlib.AbstractContextManager[BaseCheckpointSaver]:
    """The one place a checkpointer is opened from a `--db` value: a `postgresql://` URL (many users, one
    server) or a SQLite file (the embedded default). Used by `edit()`, the chat graph and `pixplan ui`.

    ```python
    with open_checkpointer("postgresql://pixplan@db.example/pixplan") as saver:
        graph = build_graph(checkpointer=saver)
    ```
    """
    return postgres_checkpointer(str(db)) if is_postgres_url(db) else sqlite_checkpointer(db)


def edit(
    image: str | Path | Image.Image | dict[str, Any] | None,
    goal: str | None,
    *,
    output: str | Path | None = None,
    trace: str | Path | None = None,
    sheet: str | Path | None = None,
    planner: str | BaseChatModel | None = None,
    orchestrator: str | BaseChatModel | None = None,
    judge: str | Judge | None = None,
    tools: Sequence[BaseTool] | None = None,
    db: str | Path | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    thread_id: str | None = None,
    resume: bool = False,
    on_event: EventHandler | None = None,
    review: PlanReviewer | None = None,
    **settings: Any,
) -> EditResult:
    """Edit `image` towards `goal`; write the result, the JSON trace and the contact sheet where asked.

    Args:
        image: a path, a Pillow image, the id of an image in the store, base64 or a data URL, or an image
            content block (`pixplan.tools.image_input`; None when resuming).
        goal: the abstract goal (None when resuming).
        output: where to save the result image.
        trace: where to save the JSON trace.
        sheet: where to save the contact sheet (before, each step, after).
        planner, orchestrator: a chat model, or a spec string such as "openai:gpt-4.1" or "local:smollm2".
        judge: a `Judge`, "metric", or a chat model spec for the LLM judge.
        tools: the tools (default `pixplan.tools.TOOLS`).
        db: SQLite checkpoint file (default: `checkpoints.sqlite` beside the store), or a `postgresql://` URL.
        checkpointer: any LangGraph checkpointer instead of SQLite.
        thread_id: the run's id (default: a new one); with `resume=True`, the run to continue.
        on_event: called with every progress event.
        review: called when the plan awaits approval (`approve_plan=True`); True accepts, a dict replaces it.
        **settings: any `Context` field (max_retries_per_step, max_replans, pass_threshold, store_dir, ...).
    """
    known = {item.name for item in fields(Context)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"unknown settings {unknown}; known: {sorted(known)}")
    for role, value in (("planner_model", planner), ("orchestrator_model", orchestrator), ("judge", judge)):
        if isinstance(value, str):
            settings[role] = value
    if "store_dir" in settings:
        settings["store_dir"] = str(settings["store_dir"])
    # Everything that can be wrong with the call is found here, before a model loads or any work starts.
    context = Context(**settings)
    if not resume and (image is None or not goal):
        raise EditError("an image and a goal are needed (or resume=True with the thread_id of a run)")
    for path, suffixes in ((output, IMAGE_SUFFIXES), (trace, (".json",)), (sheet, IMAGE_SUFFIXES)):
        if path is not None:
            check_output_path(path, suffixes=tuple(suffixes))
    check_specs(context, planner=planner, orchestrator=orchestrator, judge=judge)
    store = context.store
    if checkpointer is None:
        db = check_db(db or default_db_path(context.store_dir))
    thread_id = thread_id or uuid.uuid4().hex[:12]
    if resume and checkpointer is None and isinstance(db, Path) and not db.is_file():  # nothing is created
        raise EditError(f"no run with thread id {thread_id!r}: the checkpoint database {db} does not exist")
    if resume:
        payload: Any = None
    else:
        payload = {"image": import_image_input(store, image)["id"], "goal": goal}

    graph_kwargs = {
        "planner": planner if isinstance(planner, BaseChatModel) else None,
        "orchestrator": orchestrator if isinstance(orchestrator, BaseChatModel) else None,
        "judge": None if judge is None or isinstance(judge, str) else judge,
        "tools": tools,
    }
    events: list[dict[str, Any]] = []
    config = {"configurable": {"thread_id": thread_id}, "recursion_limit": recursion_limit(context)}

    def run(saver: BaseCheckpointSaver) -> dict[str, Any]:
        graph = build_graph(**graph_kwargs, checkpointer=saver)
        existing = bool(graph.get_state(config).values)
        if resume and not existing:
            raise EditError(f"no run with thread id {thread_id!r} in this checkpoint database")
        if not resume and existing:
            raise EditError(f"thread id {thread_id!r} is taken by an earlier run: resume it, or use a new id")
        if resume and graph.get_state(config).values.get("original", {}).get("id") not in store:
            raise EditError(
                f"run {thread_id!r} was made with another image store: its images are not in {store.root} "
                "(pass the --store it ran with)"
            )
        next_input = payload
        while True:
            pending = None
            # durability="sync": each step's checkpoint is on disk before the next step starts, so a killed run
            # resumes after its last finished step.
            for mode, chunk in graph.stream(
                next_input, config, context=context, stream_mode=["custom", "updates"], durability="sync"
            ):
                if mode == "custom":
                    events.append(chunk)
                    if on_event is not None:
                        on_event(chunk)
                elif "__interrupt__" in chunk:
                    pending = chunk["__interrupt__"][0].value
            if pending is None:
                return graph.get_state(config).values
            next_input = Command(resume=review(pending) if review is not None else True)

    if checkpointer is not None:
        values = run(checkpointer)
    else:
        with open_checkpointer(db) as saver:
            values = run(saver)

    settings_record = {k: v for k, v in asdict(context).items() if k != "store_dir"}
    for role, value in (("planner_model", planner), ("orchestrator_model", orchestrator), ("judge", judge)):
        if value is not None and not isinstance(value, str):
            settings_record[role] = f"<injected {type(value).__name__}>"
    result_trace = build_trace(values, thread_id=thread_id, settings=settings_record)
    result = EditResult(
        ref=values["current"], trace=result_trace, thread_id=thread_id, store=store, events=events
    )
    if output is not None:
        result.output = save_image(result.image, output)
    if trace is not None:
        result.trace_path = write_trace(result_trace, trace)
    if sheet is not None:
        result.sheet_path = save_image(contact_sheet(result_trace, store), sheet)
    return result


def check_specs(
    context: Context,
    *,
    planner: str | BaseChatModel | None = None,
    orchestrator: str | BaseChatModel | None = None,
    judge: str | Judge | None = None,
) -> None:
    """Every model spec of the run that nothing was injected for names a usable model (`check_model_spec`)."""
    from pixplan.graph.models import check_model_spec

    if not isinstance(planner, BaseChatModel):
        check_model_spec(context.planner_model, "planner")
    if not isinstance(orchestrator, BaseChatModel):
        check_model_spec(context.orchestrator_model, "orchestrator")
    if (judge is None or isinstance(judge, str)) and context.judge != "metric":
        check_model_spec(context.judge, "judge (the metric judge, or a chat model spec)")
