"""Benchmark the chat graph: seconds and checkpoint bytes per turn of a three-turn conversation (goal, follow-up,
undo) on SQLite or PostgreSQL, as a client runs it.

    .venv/bin/python benchmarks/bench_chat.py                    # the offline default models (slow: minutes a turn)
    .venv/bin/python benchmarks/bench_chat.py --scripted         # scripted models: checkpoint sizes in seconds
    .venv/bin/python benchmarks/bench_chat.py --scripted --preview-side 100000   # full-size images in messages
    .venv/bin/python benchmarks/bench_chat.py --scripted --db postgres           # a throwaway PostgreSQL server
    .venv/bin/python benchmarks/bench_chat.py --scripted --db postgresql://user@host/db

On PostgreSQL (`langgraph-checkpoint-postgres`) a checkpoint row holds only the changed channels' versions;
channel values go to `checkpoint_blobs` once per new version, so the figures count checkpoints + metadata +
blobs + pending writes as stored (`pg_column_size`, after Postgres' own compression), and the tables' growth on
disk (`pg_total_relation_size`, in 8 KiB pages, indexes included). On SQLite: the rows' bytes, and the growth of
the database file with its WAL.

The first turn sends examples/ad.png as a data URL with the goal, the second a follow-up on the result, the
third "undo that". After each turn: wall seconds, the bytes the turn added to the SQLite checkpoint file
(checkpoints + metadata + pending writes, split into the chat graph's own rows and the edit subgraph's), the
chat's largest checkpoint so far, and the thread's messages as JSON. `--preview-side` sets the longest side of
the image previews the messages carry (`pixplan.graph.chat.PREVIEW_SIDE`; above the image's size the whole
image goes in, as JPEG). `--scripted` answers with the test suite's scripted chat model (tests/graph_fakes.py):
one step per edit, real tools and the metric judge, so only the graph, the images and the checkpoints cost.
"""

from __future__ import annotations

import argparse
import base64
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage, messages_to_dict

from pixplan.graph import chat
from pixplan.graph.api import is_postgres_url, open_checkpointer
from pixplan.graph.context import Context

ROOT = Path(__file__).resolve().parents[1]


def scripted_models() -> dict[str, Any]:
    """Planner (turn classification and one-step plans) and orchestrator from the tests' ScriptedChatModel."""
    sys.path.insert(0, str(ROOT / "tests"))
    from graph_fakes import ScriptedChatModel, plan_message, tool_call
    from langchain_core.messages import AIMessage

    from pixplan.graph.metric_judge import MetricJudge

    def plan(text: str, tool: str) -> dict[str, Any]:
        return {
            "checklist": [{"id": "c1", "text": text, "check": {"type": "changed", "region": "background"}}],
            "steps": [{"id": "s1", "instruction": f"{text} ({tool})", "serves": ["c1"]}],
        }

    def planner(messages):
        task = str(messages[-1].content)
        if "The user's message:" in task:
            action = "undo" if "undo" in task.split("The user's message:")[1] else "edit"
            return AIMessage(content=json.dumps({"action": action, "version": 0}))
        goal = task.split("\n", 1)[0]
        return plan_message(
            plan("the background is green", "replace_background")
            if "eco" in goal
            else plan("the background is warmer", "adjust_tone")
        )

    def orchestrator(messages):
        task = next(str(m.content) for m in reversed(messages) if isinstance(m, HumanMessage))
        if "replace_background" in task:
            return tool_call("replace_background", region="background", color="forestgreen", image_id="?")
        return tool_call("adjust_tone", region="background", warmth=0.6, image_id="?")

    return {
        "planner": ScriptedChatModel(responses=[], respond=planner),
        "orchestrator": ScriptedChatModel(responses=[], respond=orchestrator),
        "judge": MetricJudge(),
    }


def db_bytes(db: Path) -> dict[str, int]:
    """Bytes of checkpoints (with metadata) and pending writes, for the chat graph ('') and its subgraphs."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT checkpoint_ns = '', sum(length(checkpoint) + length(metadata)), max(length(checkpoint)), "
            "count(*) FROM checkpoints GROUP BY checkpoint_ns = ''"
        ).fetchall()
        writes = connection.execute(
            "SELECT checkpoint_ns = '', sum(length(value)) FROM writes GROUP BY checkpoint_ns = ''"
        ).fetchall()
    out = {"chat": 0, "edit": 0, "chat_checkpoints": 0, "largest_chat_checkpoint": 0}
    for is_chat, total, largest, count in rows:
        out["chat" if is_chat else "edit"] += total
        if is_chat:
            out["chat_checkpoints"], out["largest_chat_checkpoint"] = count, largest
    for is_chat, total in writes:
        out["chat" if is_chat else "edit"] += total or 0
    return out


PG_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


def pg_bytes(url: str) -> dict[str, int]:
    """`db_bytes` for PostgreSQL: checkpoints + metadata, channel blobs and pending writes as stored."""
    import psycopg

    is_chat = "checkpoint_ns = ''"
    with psycopg.connect(url) as connection:
        run = connection.execute
        rows = run(
            f"SELECT {is_chat}, sum(pg_column_size(checkpoint) + pg_column_size(metadata)), "
            f"max(pg_column_size(checkpoint)), count(*) FROM checkpoints GROUP BY {is_chat}"
        ).fetchall()
        rows += [
            (chat_ns, total, 0, 0)
            for table in ("checkpoint_blobs", "checkpoint_writes")
            for chat_ns, total in run(
                f"SELECT {is_chat}, sum(pg_column_size(blob)) FROM {table} GROUP BY {is_chat}"
            ).fetchall()
        ]
        (disk,) = run(
            "SELECT " + " + ".join(f"pg_total_relation_size('{table}')" for table in PG_TABLES)
        ).fetchone()
    out = {"chat": 0, "edit": 0, "chat_checkpoints": 0, "largest_chat_checkpoint": 0, "disk": disk}
    for chat_ns, total, largest, count in rows:
        out["chat" if chat_ns else "edit"] += total or 0
        if chat_ns and count:
            out["chat_checkpoints"], out["largest_chat_checkpoint"] = count, largest
    return out


def measure(db: str | Path) -> dict[str, int]:
    if is_postgres_url(db):
        return pg_bytes(str(db))
    files = [Path(db), Path(f"{db}-wal")]
    disk = sum(f.stat().st_size for f in files if f.exists())
    with sqlite3.connect(db) as connection:  # the saver makes its tables on first use
        made = connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'checkpoints'").fetchone()
    empty = {"chat": 0, "edit": 0, "chat_checkpoints": 0, "largest_chat_checkpoint": 0}
    return {**(db_bytes(Path(db)) if made else empty), "disk": disk}


def converse(args: argparse.Namespace, db: str | None = None) -> list[dict[str, Any]]:
    chat.PREVIEW_SIDE = args.preview_side
    models = scripted_models() if args.scripted else {}
    data = base64.b64encode(args.image.read_bytes()).decode()
    turns = [
        [{"type": "text", "text": args.goal}, {"type": "image", "url": f"data:image/png;base64,{data}"}],
        [{"type": "text", "text": args.follow_up}],
        [{"type": "text", "text": "undo that"}],
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = db or Path(tmp) / "checkpoints.sqlite"
        context = Context(store_dir=str(Path(tmp) / "store"))
        config = {"configurable": {"thread_id": f"bench-{time.time_ns()}"}, "recursion_limit": 100}
        with open_checkpointer(db) as saver:
            graph = chat.build_chat_graph(**models, checkpointer=saver)
            before = measure(db)
            for number, content in enumerate(turns, 1):
                started = time.perf_counter()
                events = 0
                for _ in graph.stream(
                    {"messages": [HumanMessage(content=content)]},
                    config,
                    context=context,
                    stream_mode="custom",
                    subgraphs=True,
                    durability="sync",
                ):
                    events += 1
                seconds = time.perf_counter() - started
                values = graph.get_state(config).values
                after = measure(db)
                answer = values["messages"][-1]
                rows.append(
                    {
                        "turn": number,
                        "said": content[0]["text"],
                        "seconds": round(seconds, 2),
                        "events": events,
                        "current": values["current"],
                        "versions": len(values["versions"]),
                        "chat_bytes": after["chat"] - before["chat"],
                        "edit_bytes": after["edit"] - before["edit"],
                        "disk_bytes": after["disk"] - before["disk"],
                        "chat_checkpoints": after["chat_checkpoints"],
                        "largest_chat_checkpoint": after["largest_chat_checkpoint"],
                        "messages_json_bytes": len(json.dumps(messages_to_dict(values["messages"]))),
                        "answer": next(b["text"] for b in answer.content if b.get("type") == "text"),
                    }
                )
                before = after
                print(json.dumps(rows[-1]), flush=True)
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
                for version in values["versions"]:
                    target = args.out / f"version{version['version']}.png"
                    target.write_bytes(context.store.path(version["image"]["id"]).read_bytes())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=ROOT / "examples" / "ad.png")
    parser.add_argument("--goal", default="make this advertisement more eco-friendly")
    parser.add_argument("--follow-up", default="make the background warmer")
    parser.add_argument(
        "--scripted", action="store_true", help="scripted models instead of the offline default"
    )
    parser.add_argument("--preview-side", type=int, default=chat.PREVIEW_SIDE)
    parser.add_argument("--out", type=Path, help="write each version's image here")
    parser.add_argument(
        "--db",
        default="sqlite",
        help="sqlite (a temporary file), postgres (a throwaway server, tests/pg_server.py) or a postgresql:// URL",
    )
    args = parser.parse_args()
    if args.db == "postgres":
        sys.path.insert(0, str(ROOT / "tests"))
        from pg_server import postgres_server

        with postgres_server() as url:
            rows = converse(args, url)
    else:
        rows = converse(args, None if args.db == "sqlite" else args.db)
    total = sum(r["chat_bytes"] + r["edit_bytes"] for r in rows)
    print(
        json.dumps(
            {
                "models": "scripted" if args.scripted else "offline default",
                "db": "postgresql" if is_postgres_url(args.db) or args.db == "postgres" else "sqlite",
                "preview_side": args.preview_side,
                "seconds_per_turn": [r["seconds"] for r in rows],
                "checkpoint_bytes_per_turn": [r["chat_bytes"] + r["edit_bytes"] for r in rows],
                "chat_checkpoint_bytes_per_turn": [r["chat_bytes"] for r in rows],
                "checkpoint_bytes_total": total,
                "disk_bytes_per_turn": [r["disk_bytes"] for r in rows],
            }
        )
    )


if __name__ == "__main__":
    main()
