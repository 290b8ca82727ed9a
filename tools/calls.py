"""Running a tool on an image of the store, the one way pixplan does it outside a graph.

A tool runs as an agent's tool call does (a `ToolCall`, the store injected through the RunnableConfig's
`configurable.store_dir`), so the CLI, the benchmark's systems and the graph's `act` node (LangGraph's
`ToolNode`, with `store_config`) all run tools the same way and get the same `ImageRef` artifact back.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool

from pixplan.tools.store import ImageRef, ImageStore


def store_config(store: ImageStore, config: RunnableConfig | None = None) -> RunnableConfig:
    """`config` (or a new one) with the store in `configurable`, where every tool looks for it."""
    config = config or {}
    return {**config, "configurable": {**config.get("configurable", {}), "store_dir": str(store.root)}}


def invoke_tool(
    tool: BaseTool, store: ImageStore, image_id: str, args: dict[str, Any]
) -> tuple[str, ImageRef]:
    """Run `tool` on the store image `image_id` with `args` (region included); returns (summary, new image).

    A bad argument raises what the tool raises (`ToolException`, `RegionError`, pydantic's `ValidationError`),
    with the message a model would read.
    """
    call = {
        "type": "tool_call",
        "id": f"call-{tool.name}",
        "name": tool.name,
        "args": {"image_id": image_id, **args},
    }
    message = tool.invoke(call, config=store_config(store))
    return str(message.content), message.artifact
