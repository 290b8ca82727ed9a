"""Reward tables: every candidate action of a task applied once to the original image and judged once.

DESIGN.md "Learning": exhaustive rollouts cost |A|^K tool and judge calls for K steps, so pixplan precomputes
rewards under two approximations.

- **Original-image evaluation** (approximation 2): each candidate action (tool x catalog region x argument
  preset, only the region kinds the tool takes, `TOOL_REGIONS` and `PRESETS`) is applied to the task's
  *original* image and the result judged once against the whole checklist. One judged action gives its reward
  for every plan step: a step's reward counts the items it serves that pass, less the keep items the action
  broke (those that passed on the original and fail after it), over the number of judged items.
- **Additive rewards** (approximation 1): a plan's reward is the sum of its steps' rewards, so the original's
  score plus a plan's reward estimates its final score when the steps do not interact (`training/exact.py`
  measures how well).

Plans: by default the task's own checklist grouped into steps (`checklist_plan`: the change items on one region
make one step); with a planner, the planner's plans too, whose own checklist items are judged in the same call
(their ids prefixed by the plan's name). The `plan` column says which.

The table is a Hugging Face `datasets` dataset, one Parquet shard per task under `<out>/table/`, one row per
(plan, step, action); images live by content hash in `<out>/store`. Tool results and verdicts are cached by
their inputs (`<out>/cache/`), and a task whose shard exists is skipped, so a rerun makes no tool or judge call.
Tasks run in parallel in a local process pool, or on a Ray cluster (`ray_address`; `<out>` must then be on
storage that every node sees).

    pixplan train collect --config training/configs/collect.yaml

(Over 500 lines: actions, caches, rewards and their collection are one pipeline, read top to bottom.)
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool

from pixplan.graph.checks import ChecklistItem
from pixplan.graph.local.choices import hint_words, mention_score
from pixplan.graph.models import load_judge
from pixplan.graph.schemas import Judge, JudgeFailure, JudgeRequest, Plan, Step
from pixplan.tools.calls import invoke_tool
from pixplan.tools.regions import RegionCatalog
from pixplan.tools.store import ImageRef, ImageStore
from pixplan.training.systems import tools_by_name
from pixplan.training.tasks import Task, load_tasks, prepare, save_tasks

#: The plan made of the task's own checklist (`checklist_plan`).
CHECKLIST_PLAN = "checklist"

#: The region kinds each tool is applied to. 'whole' is the implicit whole-image region.
TOOL_REGIONS: dict[str, tuple[str, ...]] = {
    "recolor": ("object", "background", "whole"),
    "adjust_tone": ("object", "background", "whole"),
    "replace_background": ("background",),
    "remove_object": ("object", "text"),
    "stylize": ("background", "whole"),
    "blur": ("object", "background"),
    "sharpen": ("object",),
    "replace_text": ("text",),
    "add_text": ("background",),
    "add_badge": ("background",),
    "add_icon": ("background",),
}

#: Generic argument presets per tool, by name: the same for every task (no benchmark content).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "recolor": {
        "green": {"color": "forestgreen"},
        "light_blue": {"color": "lightsteelblue"},
        "red": {"color": "firebrick"},
        "orange": {"color": "orangered"},
    },
    "adjust_tone": {
        "darker": {"brightness": -0.8},
        "brighter": {"brightness": 0.5},
        "muted_light": {"saturation": -1.0, "brightness": 0.6},
        "vivid": {"saturation": 1.0, "brightness": 0.2},
        "warmer": {"warmth": 0.6, "brightness": 0.3},
    },
    "replace_background": {
        "green_gradient": {
            "fill": "linear_gradient",
            "color": "forestgreen",
            "second_color": "mediumseagreen",
        },
        "light_blue_gradient": {
            "fill": "linear_gradient",
            "color": "aliceblue",
            "second_color": "lightskyblue",
        },
        "warm_gradient": {"fill": "linear_gradient", "color": "gold", "second_color": "orange"},
        "red_gradient": {"fill": "linear_gradient", "color": "firebrick", "second_color": "crimson"},
        "dark_gradient": {"fill": "linear_gradient", "color": "black", "second_color": "dimgray"},
        "earthy_gradient": {"fill": "linear_gradient", "color": "sienna", "second_color": "olivedrab"},
        "light_solid": {"fill": "solid", "color": "whitesmoke"},
    },
    "remove_object": {"default": {}},
    "stylize": {style: {"style": style} for style in ("warm", "cool", "vintage", "mono", "posterize")},
    "blur": {"soft": {"radius": 8.0}},
    "sharpen": {"default": {}},
    "add_icon": {icon: {"icon": icon} for icon in ("leaf", "recycle", "snowflake", "sun", "star", "heart")},
}

#: Tools whose `text` argument comes from a plan step (the first quoted words of its instruction).
TEXT_TOOLS = ("replace_text", "add_text", "add_badge")
_QUOTED = re.compile(r"['\"‘“]([^'\"’”]{1,60})['\"’”]")


# ---------------------------------------------------------------------------------------------------- plans


def checklist_plan(task: Task) -> Plan:
    """The task's checklist as a plan: its change items grouped by region, one step per region, in order.

    Keep items are served by no step (every step must leave them alone); an item without a typed check is a
    step of its own.
    """
    groups: dict[str, list[ChecklistItem]] = {}
    for item in task.checklist:
        if item.id in task.keep:
            continue
        where = json.dumps(item.check.region) if item.check is not None else f"item:{item.id}"
        groups.setdefault(where, []).append(item)
    if not groups:
        raise ValueError(f"task {task.id}: its checklist asks for no change, so there is no step to reward")
    steps = [
        Step(id=f"s{index}", instruction="; ".join(item.text for item in items), serves=[i.id for i in items])
        for index, items in enumerate(groups.values(), 1)
    ]
    return Plan(checklist=task.checklist, steps=steps)


def step_text(instruction: str) -> str | None:
    """The text a step asks for: the first quoted words of its instruction ('... reading "VEGAN" ...')."""
    match = _QUOTED.search(instruction)
    return match.group(1).strip() or None if match else None


# -------------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Action:
    """One candidate tool call: tool, region and full arguments (defaults filled in), and its preset's name."""

    tool: str
    region: str | tuple[float, ...]
    args_json: str
    preset: str

    @property
    def args(self) -> dict[str, Any]:
        return json.loads(self.args_json)

    @property
    def id(self) -> str:
        return action_id(self.tool, self.region, self.args)


def canonical_args(tool: BaseTool, region: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments as the tool's schema reads them, defaults filled in (so equal calls compare equal)."""
    parsed = tool.tool_call_schema.model_validate({"image_id": "x", "region": region, **args})
    return {k: v for k, v in parsed.model_dump().items() if k not in ("image_id", "region")}


def action_id(tool: str, region: Any, args: dict[str, Any]) -> str:
    """A stable id of a call (its canonical arguments, as `canonical_args` gives them)."""
    region = list(region) if isinstance(region, tuple | list) else region
    text = json.dumps({"tool": tool, "region": region, "args": args}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_action(tool: BaseTool, region: Any, args: dict[str, Any], preset: str) -> Action:
    full = canonical_args(tool, region, args)
    key = tuple(region) if isinstance(region, list) else region
    return Action(tool=tool.name, region=key, args_json=json.dumps(full, sort_keys=True), preset=preset)


def catalog_regions(catalog: RegionCatalog | None) -> list[tuple[str, str]]:
    """(region, kind) pairs: the catalog's regions, the implicit 'whole', and 'background' if it has none."""
    regions = [(entry["id"], entry["kind"]) for entry in (catalog or {"regions": []})["regions"]]
    if not any(kind == "background" for _, kind in regions):
        regions.append(("background", "background"))
    return [*regions, ("whole", "whole")]


def candidate_actions(
    plans: list[Plan], catalog: RegionCatalog | None, tools: dict[str, BaseTool]
) -> list[Action]:
    """Every tool x accepted catalog region x preset; text tools once per distinct text the plans' steps give."""
    texts = list(dict.fromkeys(t for plan in plans for s in plan.steps if (t := step_text(s.instruction))))
    actions: list[Action] = []
    for name, kinds in TOOL_REGIONS.items():
        if name not in tools:
            continue
        presets = {f"text:{t}": {"text": t} for t in texts} if name in TEXT_TOOLS else PRESETS[name]
        for region, kind in catalog_regions(catalog):
            if kind in kinds:
                actions += [make_action(tools[name], region, a, preset) for preset, a in presets.items()]
    return list({action.id: action for action in actions}.values())


# --------------------------------------------------------------------------------------------------- caches


class Cache:
    """JSON values on disk by the hash of a JSON key: tool results and verdicts, so that nothing runs twice."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        return self.folder / f"{digest[:32]}.json"

    def get(self, key: dict[str, Any]) -> Any | None:
        path = self._path(key)
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, key: dict[str, Any], value: Any) -> None:
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        with os.fdopen(handle, "w") as file:
            json.dump(value, file)
        os.replace(temporary, self._path(key))


@dataclass
class Runner:
    """Applies actions and judges images through the caches, counting the tool and judge calls really made."""

    store: ImageStore
    judge: Judge
    tools: dict[str, BaseTool]
    calls: Cache
    verdicts: Cache
    tool_calls: int = 0
    judge_calls: int = 0

    @classmethod
    def open(cls, out: Path, judge: Judge, tools: dict[str, BaseTool] | None = None) -> Runner:
        out = Path(out)
        return cls(
            store=ImageStore(out / "store"),
            judge=judge,
            tools=tools or tools_by_name(),
            calls=Cache(out / "cache" / "calls"),
            verdicts=Cache(out / "cache" / "verdicts"),
        )

    def apply(self, image_id: str, tool: str, region: Any, args: dict[str, Any]) -> dict[str, Any]:
        """``{"output": id}`` or ``{"error": message}`` of one tool call on `image_id`."""
        key = {"input": image_id, "tool": tool, "region": region, "args": args}
        cached = self.calls.get(key)
        if cached is not None and (cached.get("output") is None or cached["output"] in self.store):
            return cached
        self.tool_calls += 1
        arguments = {"region": list(region) if isinstance(region, tuple) else region, **args}
        try:
            _, artifact = invoke_tool(self.tools[tool], self.store, image_id, arguments)
            result = {"output": artifact["id"], "error": None}
        except Exception as error:  # a rejected call is the action's outcome (no change), recorded
            result = {"output": None, "error": f"{type(error).__name__}: {error}"}
        self.calls.put(key, result)
        return result

    def verdict(
        self, goal: str, original: ImageRef, after_id: str, checklist: list[ChecklistItem]
    ) -> dict[str, Any]:
        """``{"passed": [ids], "failed": [ids]}`` of the judged items, or ``{"failure": message}`` (not cached)."""
        key = {
            "judge": self.judge.name,
            "goal": goal,
            "original": original["id"],
            "after": after_id,
            "checklist": [item.model_dump(exclude_none=True) for item in checklist],
        }
        cached = self.verdicts.get(key)
        if cached is not None:
            return cached
        self.judge_calls += 1
        request = JudgeRequest(
            scope="final",
            goal=goal,
            original=original,
            before=original,
            after=self.store.ref(after_id),
            store=self.store,
            checklist=checklist,
        )
        result = self.judge.judge(request)
        if isinstance(result, JudgeFailure):
            return {"failure": f"{result.kind}: {result.message}"}
        known = {item.id for item in checklist}
        items = [item for item in result.checklist if item.id in known]
        value = {"passed": [i.id for i in items if i.passed], "failed": [i.id for i in items if not i.passed]}
        self.verdicts.put(key, value)
        return value


# ------------------------------------------------------------------------------------------------- rewards


def step_reward(
    verdict: dict[str, Any], serves: list[str], baseline: dict[str, Any], keep: list[str]
) -> float:
    """Served items passed, less keep items broken (passed on the original, fail now), over the judged items."""
    passed = set(verdict["passed"])
    judged = len(verdict["passed"]) + len(verdict["failed"])
    gained = sum(item in passed for item in serves)
    broken = sum(item in baseline["passed"] and item not in passed for item in keep)
    return (gained - broken) / judged if judged else 0.0


def judged_checklist(task: Task, plans: list[tuple[str, Plan]]) -> list[ChecklistItem]:
    """The task's checklist plus the planner plans' own items (ids prefixed ``<plan>/``), judged in one call."""
    items = list(task.checklist)
    for name, plan in plans:
        if name != CHECKLIST_PLAN:
            items += [item.model_copy(update={"id": f"{name}/{item.id}"}) for item in plan.checklist]
    return items


def served_ids(name: str, step: Step) -> list[str]:
    return step.serves if name == CHECKLIST_PLAN else [f"{name}/{item}" for item in step.serves]


def task_rows(
    task: Task, runner: Runner, plans: list[tuple[str, Plan]] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The reward table rows of one task (one per plan, step and candidate action) and what they cost."""
    start = time.perf_counter()
    tool_calls, judge_calls = runner.tool_calls, runner.judge_calls
    plans = plans or [(CHECKLIST_PLAN, checklist_plan(task))]
    image, catalog = prepare(task, runner.store)
    checklist = judged_checklist(task, plans)
    baseline = runner.verdict(task.goal, image, image["id"], checklist)
    if "failure" in baseline:
        raise RuntimeError(f"task {task.id}: the judge failed on the original image: {baseline['failure']}")
    actions = candidate_actions([plan for _, plan in plans], catalog, runner.tools)
    rows = []
    for action in actions:
        applied = runner.apply(image["id"], action.tool, action.region, action.args)
        output = applied.get("output")
        verdict = baseline if output is None else runner.verdict(task.goal, image, output, checklist)
        for name, plan in plans:
            for index, step in enumerate(plan.steps):
                serves = served_ids(name, step)
                reward = None if "failure" in verdict else step_reward(verdict, serves, baseline, task.keep)
                rows.append(
                    {
                        "task_id": task.id,
                        "family": task.family,
                        "split": task.split,
                        "plan": name,
                        "step_id": step.id,
                        "step_index": index,
                        "instruction": step.instruction,
                        "serves": serves,
                        "action_id": action.id,
                        "tool": action.tool,
                        "region": json.dumps(
                            list(action.region) if isinstance(action.region, tuple) else action.region
                        ),
                        "preset": action.preset,
                        "args": action.args_json,
                        "original_image": image["id"],
                        "image": output,
                        "error": applied.get("error"),
                        "judge": runner.judge.name,
                        "judge_failure": verdict.get("failure"),
                        "passed": verdict.get("passed", []),
                        "failed": verdict.get("failed", []),
                        "reward": reward,
                    }
                )
    stats = {
        "task_id": task.id,
        "actions": len(actions),
        "steps": sum(len(plan.steps) for _, plan in plans),
        "rows": len(rows),
        "tool_calls": runner.tool_calls - tool_calls,
        "judge_calls": runner.judge_calls - judge_calls,
        "seconds": round(time.perf_counter() - start, 3),
        "baseline_passed": baseline["passed"],
        "baseline_failed": baseline["failed"],
    }
    return rows, stats


#: Among actions of equal reward, the one whose tool and preset the step's instruction names comes first
#: ("add a leaf icon": add_icon leaf before add_icon snowflake, which the metric judge cannot tell apart). A
#: choice made for the model when training targets are picked: off, ties go by action id alone.
NAMED_TIES = True


def best_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A step's table rows, best reward first; ties broken by `NAMED_TIES`, then by action id (no reward last)."""

    def key(row: dict[str, Any]) -> tuple[float, float, str]:
        named = 0.0
        if NAMED_TIES:
            named = mention_score(f"{row['tool']} {row['preset']}", hint_words(row["instruction"]))
        reward = row["reward"] if row["reward"] is not None else float("-inf")
        return (-reward, -named, row["action_id"])

    return sorted(rows, key=key)


def shard_path(out: Path, task_id: str) -> Path:
    return Path(out) / "table" / f"{task_id}.parquet"


def plans_path(out: Path, task_id: str) -> Path:
    """The plans a task's rows were rewarded for, by name (the reward function judges unseen actions by them)."""
    return Path(out) / "plans" / f"{task_id}.json"


def collect_task(
    task_record: dict[str, Any], out: str, judge: str, planner: str | Any, tools: list[str] | None = None
) -> dict[str, Any]:
    """Collect one task into its shard (a worker's job: arguments are plain data, for processes and Ray)."""
    from datasets import Dataset

    out_path = Path(out)
    task = Task.from_json(task_record, out_path)
    if shard_path(out_path, task.id).exists():
        return {"task_id": task.id, "resumed": True, "tool_calls": 0, "judge_calls": 0}
    runner = Runner.open(out_path, load_judge(judge), select_tools(tools))
    plans = [(CHECKLIST_PLAN, checklist_plan(task))]
    if planner is not None:
        plans += planner_plans(task, runner, planner)
    rows, stats = task_rows(task, runner, plans)
    plans_path(out_path, task.id).parent.mkdir(parents=True, exist_ok=True)
    plans_path(out_path, task.id).write_text(json.dumps({name: plan.model_dump() for name, plan in plans}))
    shard = shard_path(out_path, task.id)
    shard.parent.mkdir(parents=True, exist_ok=True)
    temporary = shard.with_name(f".tmp-{os.getpid()}-{shard.name}")
    Dataset.from_list(rows).to_parquet(str(temporary))
    os.replace(temporary, shard)
    (out_path / "stats").mkdir(exist_ok=True)
    (out_path / "stats" / f"{task.id}.json").write_text(json.dumps(stats, indent=1))
    return {**stats, "resumed": False}


def select_tools(names: list[str] | None) -> dict[str, BaseTool]:
    """The classical tools by name: all of them, or those named (an unknown name is an error)."""
    tools = tools_by_name()
    if names is None:
        return tools
    unknown = sorted(set(names) - set(tools))
    if unknown:
        raise ValueError(f"unknown tools {unknown}; known: {sorted(tools)}")
    return {name: tools[name] for name in names}


def planner_plans(task: Task, runner: Runner, planner: str | Any) -> list[tuple[str, Plan]]:
    """The planner's plan for the task, made by the graph's own plan node (validated and scored as it does).

    `planner` is a chat model spec, or a chat model (named by `model_id` in the table).
    """
    from langgraph.runtime import Runtime

    from pixplan.graph.context import Context
    from pixplan.graph.nodes import EditNodes
    from pixplan.tools.perception import describe_catalog

    image, catalog = prepare(task, runner.store)
    spec = planner if isinstance(planner, str) else None
    nodes = EditNodes(planner=None if spec else planner, tools=list(runner.tools.values()))
    context = Context(**({"planner_model": spec} if spec else {}), store_dir=str(runner.store.root))
    state = {
        "goal": task.goal,
        "original": image,
        "current": image,
        "catalog_text": describe_catalog(catalog) if catalog else "",
        "plan_version": 0,
    }
    update = nodes.plan(state, Runtime(context=context, stream_writer=lambda _: None))
    if update.get("plan") is None:
        return []
    return [(planner_name(planner), Plan.model_validate(update["plan"]))]


def planner_name(planner: str | Any) -> str:
    """The `plan` column of a planner's plans: ``planner:<spec>`` (or the model's `model_id`)."""
    from pixplan.graph.models import model_id

    return f"planner:{planner if isinstance(planner, str) else model_id(planner)}"


def collect(
    tasks: list[Task],
    out: str | os.PathLike[str],
    *,
    judge: str = "metric",
    planner: str | Any | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    tools: list[str] | None = None,
) -> dict[str, Any]:
    """Collect the reward table of `tasks` into `out`; returns (and writes to `collect.json`) what it cost.

    `workers` processes run tasks in parallel (default: one per CPU; 1 runs them in this process); with
    `ray_address` ("local" starts a local Ray instance, "auto" joins the running cluster) Ray runs them.
    `tools` limits the candidate actions to the tools named (default: every classical tool).
    """
    select_tools(tools)  # an unknown tool fails here, before any work
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _merge_tasks(tasks, out)
    start = time.perf_counter()
    # Finished tasks are skipped here, so a finished collection starts no worker at all.
    resumed = [
        {"task_id": t.id, "resumed": True, "tool_calls": 0, "judge_calls": 0}
        for t in tasks
        if shard_path(out, t.id).exists()
    ]
    records = [task.to_json(out) for task in tasks if not shard_path(out, task.id).exists()]
    if not records:
        results = []
    elif ray_address is not None:
        import ray

        if not ray.is_initialized():
            ray.init(address=None if ray_address == "local" else ray_address)
        remote = ray.remote(collect_task)
        results = ray.get([remote.remote(record, str(out), judge, planner, tools) for record in records])
    elif (workers or os.cpu_count() or 1) > 1 and len(records) > 1:
        context = multiprocessing.get_context("spawn")  # no forked OCR or thread state
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count(), mp_context=context) as pool:
            futures = [
                pool.submit(collect_task, record, str(out), judge, planner, tools) for record in records
            ]
            results = [future.result() for future in futures]
    else:
        results = [collect_task(record, str(out), judge, planner, tools) for record in records]
    results += resumed
    done = [result for result in results if not result["resumed"]]
    summary = {
        "tasks": len(results),
        "collected": len(done),
        "resumed": len(results) - len(done),
        "actions_per_task": _mean([r["actions"] for r in done]),
        "steps": sum(r["steps"] for r in done),
        "rows": sum(r["rows"] for r in done),
        "tool_calls": sum(r["tool_calls"] for r in results),
        "judge_calls": sum(r["judge_calls"] for r in results),
        "task_seconds": _mean([r["seconds"] for r in done]),
        "wall_seconds": round(time.perf_counter() - start, 2),
        "judge": judge,
        "planner": None if planner is None else planner_name(planner),
        "parallel": "ray" if ray_address is not None else f"{workers or os.cpu_count()} processes",
    }
    (out / "collect.json").write_text(json.dumps(summary, indent=1))
    return summary


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def _merge_tasks(tasks: list[Task], out: Path) -> None:
    """Keep `<out>/tasks.jsonl` the union of every task collected there (the reward function reads it)."""
    path = out / "tasks.jsonl"
    known = {task.id: task for task in load_tasks(path)} if path.exists() else {}
    known.update({task.id: task for task in tasks})
    save_tasks(list(known.values()), path)


def load_table(out: str | os.PathLike[str]):
    """The reward table in `out` as a `datasets.Dataset` (its Parquet shards, in task order)."""
    from datasets import Dataset

    shards = sorted(str(path) for path in (Path(out) / "table").glob("*.parquet"))
    if not shards:
        raise FileNotFoundError(f"no reward table in {out}: run `pixplan train collect --out {out}` first")
    return Dataset.from_parquet(shards)
