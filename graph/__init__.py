"""pixplan.graph: the edit graph (plan, orchestrate, act, judge), its judges and models.

`from pixplan.graph import build_graph, build_chat_graph, edit` loads LangGraph and LangChain only (no torch, no provider SDK);
the names are imported on first use, so `import pixplan.graph.schemas` stays lighter still.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pixplan.graph.api import EditResult, edit
    from pixplan.graph.builder import build_graph
    from pixplan.graph.chat import build_chat_graph
    from pixplan.graph.context import Context

__all__ = ["Context", "EditResult", "build_chat_graph", "build_graph", "edit"]

_EXPORTS = {
    "build_graph": "pixplan.graph.builder",
    "build_chat_graph": "pixplan.graph.chat",
    "edit": "pixplan.graph.api",
    "EditResult": "pixplan.graph.api",
    "Context": "pixplan.graph.context",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pixplan.graph' has no attribute {name!r}")
