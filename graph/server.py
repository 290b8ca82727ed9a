"""The graphs that `langgraph dev` serves (see `langgraph.json` at the repository root): `pixplan`, the edit
graph, and `chat`, the chat assistant over it (`pixplan.graph.chat`).

Models and the judge resolve from each run's context (`planner_model`, `orchestrator_model`, `judge`); the
server brings its own checkpointer.
"""

from pixplan.graph.builder import build_graph
from pixplan.graph.chat import build_chat_graph

graph = build_graph()
chat = build_chat_graph()
