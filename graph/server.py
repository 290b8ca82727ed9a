"""The graph that `langgraph dev` serves (see `langgraph.json` at the repository root).

Models and the judge resolve from each run's context (`planner_model`, `orchestrator_model`, `judge`); the
server brings its own checkpointer.
"""

from pixplan.graph.builder import build_graph

graph = build_graph()
