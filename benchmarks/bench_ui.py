"""Seconds per turn of `pixplan ui`'s assistant (the same `Assistant.stream` the page calls, without a
browser): an edit turn, a follow-up edit, then "undo", on the offline default models unless flags say
otherwise.

    .venv/bin/python benchmarks/bench_ui.py [--image examples/ad.png] [any pixplan edit run setting]

Prints one line per turn (seconds, events streamed, the version shown) and the checkpoint bytes of the thread.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from pixplan.graph.api import sqlite_checkpointer
from pixplan.graph.context import Context, add_context_arguments, context_settings
from pixplan.graph.ui import Assistant, human_turn

TURNS = ("make the headline stand out", "make the background a little brighter", "undo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="examples/ad.png")
    add_context_arguments(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = {"store_dir": str(Path(folder) / "store"), **context_settings(args)}
        context = Context(**settings)
        db = Path(folder) / "checkpoints.sqlite"
        with sqlite_checkpointer(db) as saver:
            assistant = Assistant(context=context, checkpointer=saver)
            print(
                f"models: planner {context.planner_model}, orchestrator {context.orchestrator_model}, "
                f"judge {context.judge}"
            )
            for number, text in enumerate(TURNS):
                turn = human_turn(text, args.image if number == 0 else None)
                started = time.perf_counter()
                replies = list(assistant.stream("bench", turn, approve=False))
                events, (_, values) = len(replies) - 1, replies[-1]
                seconds = time.perf_counter() - started
                print(
                    f"turn {number + 1} {text!r}: {seconds:.1f} s, {events} events, "
                    f"showing version {values['current']} of {len(values['versions'])}"
                )
        with sqlite3.connect(db) as connection:
            rows = connection.execute("SELECT COUNT(*), SUM(LENGTH(checkpoint)) FROM checkpoints").fetchone()
        print(
            f"checkpoints: {rows[0]} rows, {rows[1] / 1024:.0f} KB ({db.stat().st_size / 1024:.0f} KB file)"
        )


if __name__ == "__main__":
    main()
