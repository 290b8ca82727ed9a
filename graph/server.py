"""The graphs that `langgraph dev` serves (see `langgraph.json` at the repository root): `pixplan`, the edit
graph, and `chat`, the chat assistant over it (`pixplan.graph.chat`); and the Postgres checkpointer
`langgraph.postgres.json` gives the dev server.

Models and the judge resolve from each run's context (`planner_model`, `orchestrator_model`, `judge`); the
server brings its own checkpointer.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from langgraph.checkpoint.base import BaseCheckpointSaver

from pixplan.graph.api import EditError, async_postgres_checkpointer, is_postgres_url
from pixplan.graph.builder import build_graph
from pixplan.graph.chat import build_chat_graph

# A remote client names images by store id, base64 or data URL, never by a path on this machine.
# A client names no file of the server's (image_roots=()) and no store but the one GET /images serves.
graph = build_graph(image_roots=(), default_store_only=True)
chat = build_chat_graph(image_roots=(), default_store_only=True)


@contextlib.asynccontextmanager
async def postgres_checkpointer() -> AsyncIterator[BaseCheckpointSaver]:
    """The dev server's checkpoints in `$PIXPLAN_DB` (a postgresql:// URL): langgraph.postgres.json's
    `checkpointer` (`{"backend": "custom", "path": "./graph/server.py:postgres_checkpointer"}`)."""
    db = os.environ.get("PIXPLAN_DB", "")
    if not is_postgres_url(db):
        raise EditError(
            "langgraph.postgres.json keeps checkpoints in $PIXPLAN_DB: set it to postgresql://..."
        )
    async with async_postgres_checkpointer(db) as saver:
        yield saver
