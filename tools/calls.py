"""Running a tool on an image of the store, the one way pixplan does it outside a graph.

A tool runs as an agent's tool call does (a `ToolCall`, the store injected through the RunnableConfig's
`configurable.store_dir`), so the CLI, the benchmark's systems and the graph's `act` node (LangGraph's
`ToolNode`, with `store_config`) all run tools the same way and get the same `ImageRef` artifact back. Tools
refuse arguments they do not have (`forbid_unknown_arguments`), and every edge (CLI, MCP) shows a tool's error as
the one line `error_text` makes of it.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ValidationError

from pixplan.tools.store import ImageRef, ImageStore

Settings = TypeVar("Settings")


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


def forbid_unknown_arguments(tools: list[BaseTool]) -> list[BaseTool]:
    """Make each tool refuse arguments it does not have (pydantic ignores them by default), so that a model that
    misnames one (`colour` for `color`) reads an error and corrects itself instead of being silently ignored."""
    for library_tool in tools:
        schema = library_tool.args_schema
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            schema.model_config["extra"] = "forbid"
            schema.model_rebuild(force=True)
    return tools


def error_text(error: BaseException) -> str:
    """Any of pixplan's errors (a tool's, a region's, pydantic's argument errors) as one line to act on."""
    if isinstance(error, ValidationError):
        problems = [f"{'.'.join(map(str, item['loc'])) or 'input'}: {item['msg']}" for item in error.errors()]
        return f"invalid arguments for {error.title}: " + "; ".join(problems)
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(text.split()) or type(error).__name__


def settings_from_config(config: Any, key: str, settings_type: type[Settings]) -> Settings:
    """A tool family's settings from a tool call's config: ``configurable[key]``, either a `settings_type`
    dataclass or a dict of its fields (an unknown field is an error), else the defaults.

    The generative tools read ``configurable["generative"]`` (`GenerativeSettings`), the grounding tools
    ``configurable["grounding"]`` (`GroundingSettings`): the user's settings, never arguments the model sees.
    """
    configurable = (config or {}).get("configurable", {}) if isinstance(config, dict) else {}
    value = configurable.get(key)
    if value is None:
        return settings_type()
    if isinstance(value, settings_type):
        return value
    known = {item.name for item in fields(settings_type)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"unknown {key} settings {unknown}; known: {sorted(known)}")
    return settings_type(**value)
