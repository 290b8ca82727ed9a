"""The nodes of the edit graph: perceive, plan, review_plan, orchestrate, act, judge_step, judge_final.

`EditNodes` holds what `build_graph` injects (models, judge, tools); whatever is not injected is resolved lazily
from the run context (`load_chat_model(spec)`), so the graph builds without keys, weights or torch. Nodes write
facts (a plan, a tool call, a verdict); the routers in `routing.py` decide what follows.

The seven nodes of one graph, each reading top to bottom; what is not a node lives in its own module: what each
model is asked and among what (`model_inputs`), plan validation and scoring (`plans`), model resolution
(`models`), prompts, routing.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import ValidationError

from pixplan.graph import prompts
from pixplan.graph.context import Context, run_context
from pixplan.graph.model_inputs import (
    decoding_options,
    plan_choices,
    planner_messages,
    step_message,
    tool_spec,
)
from pixplan.graph.models import cached_chat_model, load_judge, supports_images
from pixplan.graph.plans import same_steps, score_plan, short_error, validate_plan
from pixplan.graph.routing import next_step_index, step_attempts
from pixplan.graph.schemas import Judge, JudgeFailure, JudgeRequest, Plan, Verdict
from pixplan.graph.state import Attempt, EditState, PlanRecord, RoleUsage
from pixplan.graph.usage import metered
from pixplan.tools.calls import store_config
from pixplan.tools.image_input import import_image_input
from pixplan.tools.regions import RegionCatalog, RegionError, load_catalog, region_aliases
from pixplan.tools.store import ImageError, ImageRef, ImageStore


def _takes_choices(model: BaseChatModel) -> bool:
    from pixplan.graph.models import takes_choices

    return takes_choices(model)


def is_transient(error: BaseException) -> bool:
    """Errors worth running a tool again for unchanged: timeouts, lost connections, out of memory."""
    return (
        isinstance(error, TimeoutError | ConnectionError | MemoryError)
        or "OutOfMemory" in type(error).__name__
    )


def _image_block(store: ImageStore, image_id: str) -> dict[str, Any]:
    data = base64.b64encode(store.path(image_id).read_bytes()).decode()
    return {"type": "image", "base64": data, "mime_type": "image/png"}


def _with_image(messages: list[BaseMessage], store: ImageStore, image_id: str) -> list[BaseMessage]:
    """The messages with the image added to the first user message: for the call only, never for the state."""
    out = list(messages)
    for index, message in enumerate(out):
        if isinstance(message, HumanMessage):
            text = message.content if isinstance(message.content, str) else ""
            out[index] = HumanMessage(content=[{"type": "text", "text": text}, _image_block(store, image_id)])
            break
    return out


class EditInputError(ValueError):
    """The edit's input is unusable (no goal; an image that is missing, not an image, too large, an http URL):
    the caller's mistake, said in one line, raised before any model is asked."""


def _tool_errors(messages: Sequence[AnyMessage]) -> list[str]:
    return [str(m.content) for m in messages if isinstance(m, ToolMessage) and m.status == "error"]


class EditNodes:
    """The graph's nodes, bound to the injected models, judge and tools."""

    def __init__(
        self,
        *,
        planner: BaseChatModel | None = None,
        orchestrator: BaseChatModel | None = None,
        judge: Judge | None = None,
        tools: Sequence[BaseTool],
        image_roots: Sequence[Path] | None = None,
        default_store_only: bool = False,
    ) -> None:
        self.planner = planner
        self.image_roots = image_roots
        self.default_store_only = default_store_only  # a server's: no run may use another store
        self.orchestrator = orchestrator
        self.judge = judge
        self.tools = list(tools)
        self.tool_node = ToolNode(self.tools, handle_tool_errors=(ToolException, RegionError))
        self._image_id_tools = {tool.name for tool in self.tools if "image_id" in tool.args}
        self.tool_names = [tool.name for tool in self.tools]

    # -- resolution ------------------------------------------------------------------------------------------

    def _model(self, role: str, context: Context) -> BaseChatModel:
        injected = getattr(self, role)
        if injected is not None:
            return injected
        return cached_chat_model(context.planner_model if role == "planner" else context.orchestrator_model)

    def _judge(self, context: Context) -> Judge:
        return self.judge if self.judge is not None else load_judge(context.judge)

    def _images_for(self, model: BaseChatModel, context: Context) -> bool:
        return context.send_images and supports_images(model)

    # -- perceive --------------------------------------------------------------------------------------------

    def perceive(self, state: EditState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Import the image into the store if needed and build its region catalog."""
        from pixplan.tools.perception import build_catalog, describe_catalog

        context = run_context(runtime, self.default_store_only)
        store = context.store
        if not isinstance(state.get("goal"), str) or not state["goal"].strip():
            raise EditInputError("the goal is missing or empty: say what the edit should achieve")
        try:
            ref = import_image_input(store, state["image"], roots=self.image_roots)
        except ImageError as error:
            raise EditInputError(str(error)) from None
        catalog = load_catalog(store, ref["id"])
        if catalog is None:
            catalog = build_catalog(store, ref["id"])
        text = describe_catalog(catalog)
        runtime.stream_writer(
            {"event": "perceived", "image": ref["id"], "regions": len(catalog["regions"]), "catalog": text}
        )
        return {
            "image": ref["id"],  # the id from here on, not the base64 a client may have sent
            "original": ref,
            "current": ref,
            "catalog_text": text,
            "limits": context.limits(),
            "status": "running",
            "plan": None,
            "final_verdict": None,
            "final_failure": None,
            "step_index": 0,
        }

    # -- plan --------------------------------------------------------------------------------------------------

    def plan(self, state: EditState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Sample candidate plans (re-asking malformed ones with their errors), score them, keep the best."""
        context = run_context(runtime, self.default_store_only)
        store = context.store
        catalog = load_catalog(store, state["original"]["id"])
        version = state.get("plan_version", 0) + 1
        model = self._model("planner", context)
        history = ""
        if version > 1:
            failed = [a for a in state.get("attempts", []) if not a["accepted"]][-2:]
            final = state.get("final_verdict")
            problems = prompts.format_attempt_feedback(failed) if failed else ""
            if final is not None:
                problems += "\n- final judgement: " + "; ".join(final["reasons"][:4])
                problems += f"\n  fix: {final.get('fix_instructions', '')}"
            history = prompts.REPLAN_HISTORY.format(
                done=prompts.format_done_steps(state.get("attempts", [])), failed=problems or "- (unknown)"
            )
        messages = planner_messages(
            state["goal"], state["current"], state["catalog_text"], self.tools, context.max_steps, history
        )
        if self._images_for(model, context):
            messages = _with_image(messages, store, state["current"]["id"])
        constrained = plan_choices(self.tool_names, catalog) if _takes_choices(model) else {}
        structured = model.with_structured_output(Plan, **constrained)
        usage: dict[str, RoleUsage] = {}
        candidates: list[dict[str, Any]] = []
        best: tuple[float, Plan, dict[str, float]] | None = None
        kept: list[Plan] = []
        with metered("planner", usage, context.num_plan_candidates, full_prompts=context.trace_prompts):
            for _ in range(context.num_plan_candidates):
                asked = messages
                if kept:  # later candidates see the earlier ones, so even a greedy model writes a new plan
                    others = "\n".join(candidate.model_dump_json() for candidate in kept)
                    asked = [*messages, HumanMessage(prompts.ANOTHER_PLAN.format(plans=others))]
                plan, errors = self._ask_plan(structured, asked, catalog, context, state["goal"])
                if plan is None:
                    candidates.append({"valid": False, "errors": errors})
                    continue
                kept.append(plan)
                score, parts = score_plan(plan)
                candidates.append({"valid": True, "score": score, "parts": parts, "reasks": len(errors)})
                if best is None or score > best[0]:
                    best = (score, plan, parts)
        if best is not None and version > 1 and same_steps(best[1], state.get("plan")):
            # A replan that repeats the plan in force would only repeat its failure.
            candidates.append({"valid": False, "errors": ["the replan repeats the previous plan"]})
            best = None
        record = PlanRecord(
            version=version,
            plan=best[1].model_dump() if best else None,
            score=best[0] if best else 0.0,
            score_parts=best[2] if best else {},
            candidates=candidates,
        )
        runtime.stream_writer(
            {
                "event": "replanned" if version > 1 else "planned",
                "version": version,
                "plan": record["plan"],
                "score": record["score"],
                "candidates": candidates,
            }
        )
        update: dict[str, Any] = {"plans": [record], "plan_version": 1, "usage": usage}
        if best is not None:
            update["plan"] = record["plan"]
            update["messages"] = [RemoveMessage(id=REMOVE_ALL_MESSAGES)]
        elif not state.get("plan"):
            update["status"] = "no_plan"
        return update

    def _ask_plan(
        self,
        structured: Any,
        messages: list[BaseMessage],
        catalog: RegionCatalog | None,
        context: Context,
        goal: str,
    ) -> tuple[Plan | None, list[str]]:
        """One candidate: ask, validate, re-ask with the errors, at most `max_plan_attempts` times."""
        conversation = list(messages)
        errors: list[str] = []
        for _ in range(context.max_plan_attempts):
            try:
                raw = structured.invoke(conversation)
                plan = raw if isinstance(raw, Plan) else Plan.model_validate(raw)
                problems = validate_plan(
                    plan, catalog, max_steps=context.max_steps, goal=goal, tools=list(self.tool_names)
                )
            except (ValidationError, ValueError, TypeError) as error:
                problems = [short_error(error)]
            if not problems:
                return plan, errors
            message = "\n".join(f"- {problem}" for problem in problems)
            errors.append(message)
            conversation = [*messages, HumanMessage(prompts.PLAN_INVALID.format(error=message))]
        return None, errors

    # -- review_plan -----------------------------------------------------------------------------------------

    def review_plan(self, state: EditState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Pause for the user: resume with True (accept) or an edited plan (a dict in the Plan schema)."""
        context = run_context(runtime, self.default_store_only)
        catalog = load_catalog(context.store, state["original"]["id"])
        request: dict[str, Any] = {
            "question": "Accept this plan, or send an edited one.",
            "plan": state["plan"],
        }
        while True:
            answer = interrupt(request)
            if answer is True or answer in ("accept", "yes", "y", "") or answer is None:
                return {}
            try:
                edited = Plan.model_validate(answer)
                problems = validate_plan(
                    edited,
                    catalog,
                    max_steps=context.max_steps,
                    goal=state["goal"],
                    tools=list(self.tool_names),
                )
            except ValidationError as error:
                problems = [short_error(error)]
            if not problems:
                runtime.stream_writer({"event": "plan_edited", "plan": edited.model_dump()})
                return {"plan": edited.model_dump()}
            request = {**request, "error": "; ".join(problems)}

    # -- orchestrate -----------------------------------------------------------------------------------------

    def orchestrate(self, state: EditState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Ask the tool-calling model for one tool call that executes the current step."""
        context = run_context(runtime, self.default_store_only)
        plan = Plan.model_validate(state["plan"])
        current = state["current"]
        history = list(state.get("messages", []))
        new: list[BaseMessage] = []
        if not history:  # a new attempt: first try at a step, or a retry from the reverted image
            index = next_step_index(state)
            step = plan.steps[index]
            earlier = step_attempts(state, index)
            new.append(step_message(plan, index, current, state["catalog_text"], earlier))
            event = "retried" if earlier else "step_started"
            runtime.stream_writer(
                {
                    "event": event,
                    "step": step.id,
                    "index": index,
                    "of": len(plan.steps),
                    "attempt": len(earlier) + 1,
                    "instruction": step.instruction,
                    "image": current["id"],  # a retry starts again from the image before the step
                }
            )
        else:
            index = state["step_index"]
        model = self._model("orchestrator", context)
        store = context.store
        specs = [tool_spec(tool) for tool in self.tools]
        regions = (load_catalog(store, state["original"]["id"]) or {"regions": []})["regions"]
        if _takes_choices(model):  # known regions, the step's words as hints, the rejected calls excluded
            bound = model.bind_tools(
                specs,
                **decoding_options(regions, plan.steps[index].instruction),
                exclude=rejected_calls(step_attempts(state, index), regions),
                hints=context.hints,
            )
        else:
            bound = model.bind_tools(specs)
        usage: dict[str, RoleUsage] = {}
        with metered("orchestrator", usage, full_prompts=context.trace_prompts):
            for ask in range(context.max_tool_errors):
                conversation: list[BaseMessage] = [SystemMessage(prompts.ORCHESTRATOR_SYSTEM), *history, *new]
                if self._images_for(model, context):
                    conversation = _with_image(conversation, store, current["id"])
                response = bound.invoke(conversation)
                if isinstance(response, AIMessage) and response.tool_calls:
                    response = self._one_call(response, current["id"])
                    new.append(response)
                    call = response.tool_calls[0]
                    if not _repeats_a_failure(call, step_attempts(state, index), regions):
                        break
                    # The same call would fail the same way: answer it as a bad call, without running it.
                    new.append(
                        ToolMessage(
                            prompts.REPEATED_CALL, name=call["name"], tool_call_id=call["id"], status="error"
                        )
                    )
                    continue
                new.append(response)
                if ask + 1 < context.max_tool_errors:
                    new.append(HumanMessage(prompts.NO_TOOL_CALL))
        last = new[-1]
        if isinstance(last, AIMessage) and last.tool_calls:
            call = last.tool_calls[0]
            runtime.stream_writer(
                {
                    "event": "tool_chosen",
                    "step": plan.steps[index].id,
                    "tool": call["name"],
                    "region": call["args"].get("region"),
                    "args": {k: v for k, v in call["args"].items() if k != "image_id"},
                }
            )
        return {"messages": new, "step_index": index, "usage": usage}

    def _one_call(self, response: AIMessage, image_id: str) -> AIMessage:
        """Keep the first tool call (a step is one edit) and point it at the current image."""
        call = dict(response.tool_calls[0])
        if call["name"] in self._image_id_tools:
            call["args"] = {**call["args"], "image_id": image_id}
        return AIMessage(
            content=response.content,
            tool_calls=[call],
            id=response.id,
            usage_metadata=response.usage_metadata,
            response_metadata=response.response_metadata,
        )

    # -- act -----------------------------------------------------------------------------------------------------

    def act(self, state: EditState, config: RunnableConfig, runtime: Runtime[Context]) -> dict[str, Any]:
        """Run the tool call with LangGraph's ToolNode; tools find the run's store in `configurable`."""
        result = self.tool_node.invoke(
            {"messages": state["messages"]}, store_config(run_context(runtime, self.default_store_only).store, config)
        )
        message = result["messages"][-1]
        if message.status == "error":
            runtime.stream_writer(
                {"event": "tool_error", "tool": message.name, "error": str(message.content)}
            )
        return result

    # -- judge_step ----------------------------------------------------------------------------------------------

    def judge_step(self, state: EditState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Judge what the step's tool call made; accept it as the current image if it passes."""
        context = run_context(runtime, self.default_store_only)
        started = time.perf_counter()
        plan = Plan.model_validate(state["plan"])
        index = state["step_index"]
        step = plan.steps[index]
        messages = state["messages"]
        calls = [m for m in messages if isinstance(m, AIMessage) and m.tool_calls]
        call = calls[-1].tool_calls[0] if calls else None
        last = messages[-1] if messages else None
        image: ImageRef | None = None
        if isinstance(last, ToolMessage) and last.status != "error" and isinstance(last.artifact, dict):
            image = last.artifact  # type: ignore[assignment]
        verdict: Verdict | None = None
        failure: dict[str, Any] | None = None
        usage: dict[str, RoleUsage] = {}
        if image is None:
            errors = _tool_errors(messages)
            if call is None:
                reason = "the orchestrator made no tool call"
            else:
                reason = f"no tool call succeeded ({len(errors)} errors; last: {errors[-1][:160] if errors else '-'})"
            failure = {"kind": "no_image", "message": reason}
        else:
            request = JudgeRequest(
                scope="step",
                goal=state["goal"],
                original=state["original"],
                before=state["current"],
                after=image,
                store=context.store,
                instruction=step.instruction,
                # The region the tool really used (its default, when the model left it out).
                region=image.get("args", {}).get("region", (call or {"args": {}})["args"].get("region")),
                checklist=[item for item in plan.checklist if item.id in step.serves],
            )
            with metered("judge", usage, full_prompts=context.trace_prompts):
                result = self._judge(context).judge(request)
            if isinstance(result, JudgeFailure):
                failure = result.model_dump()
            else:
                verdict = result
        passed, accepted = step_acceptance(verdict, image, state["limits"]["pass_threshold"])
        attempt = Attempt(
            plan_version=state["plan_version"],
            step_id=step.id,
            step_index=index,
            attempt=len(step_attempts(state, index)) + 1,
            instruction=step.instruction,
            before=state["current"]["id"],
            tool=call["name"] if call else None,
            args={k: v for k, v in call["args"].items() if k != "image_id"} if call else {},
            image=image,
            tool_errors=_tool_errors(messages),
            verdict=verdict.model_dump() if verdict else None,
            score=round(verdict.score, 4) if verdict else None,
            failure=failure,
            passed=passed,
            accepted=accepted,
            seconds=round(time.perf_counter() - started, 4),
        )
        runtime.stream_writer(
            {
                "event": "judged",
                "step": step.id,
                "attempt": attempt["attempt"],
                "tool": attempt["tool"],
                "region": request.region if image is not None else attempt["args"].get("region"),
                "score": attempt["score"],
                "passed": passed,
                "accepted": accepted,
                "failure": failure,
                "failed_items": [item.id for item in verdict.checklist if not item.passed] if verdict else [],
                "reasons": verdict.reasons[:3] if verdict else [],
            }
        )
        update: dict[str, Any] = {
            "attempts": [attempt],
            "messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES)],
            "usage": usage,
        }
        if accepted:
            update["current"] = image
        return update

    # -- judge_final ---------------------------------------------------------------------------------------------

    def judge_final(self, state: EditState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Judge the whole edit, original against current, on the full checklist."""
        context = run_context(runtime, self.default_store_only)
        plan = Plan.model_validate(state["plan"])
        request = JudgeRequest(
            scope="final",
            goal=state["goal"],
            original=state["original"],
            before=state["original"],
            after=state["current"],
            store=context.store,
            checklist=plan.checklist,
        )
        usage: dict[str, RoleUsage] = {}
        with metered("judge", usage, full_prompts=context.trace_prompts):
            result = self._judge(context).judge(request)
        verdict = None if isinstance(result, JudgeFailure) else result
        passed = verdict is not None and verdict.score >= state["limits"]["final_threshold"]
        runtime.stream_writer(
            {
                "event": "final",
                "score": None if verdict is None else round(verdict.score, 4),
                "passed": passed,
                "failure": result.model_dump() if verdict is None else None,
                "image": state["current"]["id"],
            }
        )
        return {
            "final_verdict": verdict.model_dump() if verdict else None,
            "final_failure": result.model_dump() if verdict is None else None,
            "status": "passed" if passed else "finished",
            "usage": usage,
        }


def step_acceptance(verdict: Verdict | None, image: ImageRef | None, threshold: float) -> tuple[bool, bool]:
    """Whether a step's attempt passed, and whether its image is accepted: the one place this is decided.

    It passes with a score at the threshold and, where the judge checked the step's requirements, at least one
    of them met (a step may serve an item that later steps complete, but it must serve one). A judge that
    fails gives no score: the edit is then kept unjudged (the trace says so) rather than retried.
    """
    met = verdict is not None and (not verdict.checklist or any(item.passed for item in verdict.checklist))
    passed = verdict is not None and verdict.score >= threshold and met
    return passed, passed or (image is not None and verdict is None)


def rejected_calls(earlier: Sequence[Attempt], regions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls the judge failed at this step, each under every name of its region, so a retry is not the
    same call again as ``r7`` after ``background``."""
    calls = []
    for a in earlier:
        if a["accepted"] or not a["tool"]:
            continue
        if "region" not in a["args"]:
            calls.append({"name": a["tool"], "args": dict(a["args"])})
            continue
        for alias in region_aliases(a["args"]["region"], regions):
            calls.append({"name": a["tool"], "args": {**a["args"], "region": alias}})
    return calls


def _repeats_a_failure(call: dict[str, Any], earlier: list[Attempt], regions: Sequence[dict[str, Any]]) -> bool:
    """The call is one that an earlier attempt at the step already made (its region under any name) and the
    judge failed."""
    args = {k: v for k, v in call["args"].items() if k != "image_id"}
    return any(
        {"name": call["name"], "args": args} == rejected for rejected in rejected_calls(earlier, regions)
    )
