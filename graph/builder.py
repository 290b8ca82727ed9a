"""The one factory of the edit graph.

```
START -> perceive -> plan -> [review_plan] -> orchestrate -> act -> judge_step --next/retry--> orchestrate
                      ^                          ^   |                  |--replan--> plan
                      |                          '---' bad tool call    '--done----> judge_final --replan--> plan
                      '-----------------------------------------------------------------'  '--end--> END
```
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import RetryPolicy

from pixplan.graph.context import Context
from pixplan.graph.nodes import EditNodes, is_transient
from pixplan.graph.routing import (
    route_after_act,
    route_after_judge_final,
    route_after_judge_step,
    route_after_orchestrate,
    route_after_plan,
)
from pixplan.graph.schemas import Judge
from pixplan.graph.state import EditState, InputState, OutputState


def build_graph(
    *,
    planner: BaseChatModel | None = None,
    orchestrator: BaseChatModel | None = None,
    judge: Judge | None = None,
    tools: Sequence[BaseTool] | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    image_roots: Sequence[Path] | None = None,
    default_store_only: bool = False,
) -> CompiledStateGraph:
    """Build the edit graph. Models and the judge not given are resolved from the run context when used.

    Args:
        planner: chat model with structured output for plans (default: the context's `planner_model`).
        orchestrator: tool-calling chat model (default: the context's `orchestrator_model`).
        judge: a `Judge` (default: the context's `judge` spec).
        tools: the tools the orchestrator may call (default: `pixplan.tools.TOOLS`).
        checkpointer: where state is saved after each step (none: `edit()` opens SQLite; `langgraph dev`
            brings its own).
        image_roots: folders an input image given as a path may lie in. None reads any file the caller names
            (local use: the CLI, `edit()`, `pixplan ui`); a server passes `()`, so that a remote client sends
            ids, base64 and data URLs but can never name a file of the server's.
        default_store_only: every run uses the default store (`$PIXPLAN_STORE`, else ~/.cache/pixplan/store)
            and a context naming another is refused: a server sets it, so a client cannot point the store at
            a folder of its choice. False: each run's context chooses.
    """
    if tools is None:
        from pixplan.tools import TOOLS

        tools = TOOLS
    nodes = EditNodes(
        planner=planner,
        orchestrator=orchestrator,
        judge=judge,
        tools=tools,
        image_roots=image_roots,
        default_store_only=default_store_only,
    )
    builder = StateGraph(
        EditState, context_schema=Context, input_schema=InputState, output_schema=OutputState
    )
    builder.add_node("perceive", nodes.perceive)
    builder.add_node("plan", nodes.plan)
    builder.add_node("review_plan", nodes.review_plan)
    builder.add_node("orchestrate", nodes.orchestrate)
    builder.add_node("act", nodes.act, retry_policy=RetryPolicy(max_attempts=3, retry_on=is_transient))
    builder.add_node("judge_step", nodes.judge_step)
    builder.add_node("judge_final", nodes.judge_final)

    builder.add_edge(START, "perceive")
    builder.add_edge("perceive", "plan")
    builder.add_conditional_edges(
        "plan",
        route_after_plan,
        {
            "review_plan": "review_plan",
            "orchestrate": "orchestrate",
            "judge_final": "judge_final",
            "end": END,
        },
    )
    builder.add_edge("review_plan", "orchestrate")
    builder.add_conditional_edges(
        "orchestrate", route_after_orchestrate, {"act": "act", "judge_step": "judge_step"}
    )
    builder.add_conditional_edges(
        "act", route_after_act, {"orchestrate": "orchestrate", "judge_step": "judge_step"}
    )
    builder.add_conditional_edges(
        "judge_step",
        route_after_judge_step,
        {"next": "orchestrate", "retry": "orchestrate", "replan": "plan", "done": "judge_final"},
    )
    builder.add_conditional_edges("judge_final", route_after_judge_final, {"replan": "plan", "end": END})
    return builder.compile(checkpointer=checkpointer, name="pixplan")
