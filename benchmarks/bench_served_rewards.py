"""The table reward of the call an orchestrator serves for each step of a reward table: how good its choices are,
in seconds a step instead of an edit's minutes.

Each step of the table's plans is decoded as the orchestrate node serves it (its first attempt: the same
messages, catalog region choices and, with hints on, the step's words as hints; greedy) and the call's reward
looked up in the table (a call the table lacks is applied and judged live, then cached: `TableReward`). Run it on
a table of tasks the model never trained on (`pixplan train collect --split test --out runs/rewards-test`) to
measure it held out; it prints one JSON object: the mean served reward against the mean best reward of the same
steps (the table's best action per step: what a perfect orchestrator earns under the two approximations),
the share of steps where the served call earns the best reward, and the share the table already held.

    .venv/bin/python benchmarks/bench_served_rewards.py --table runs/rewards-test
    .venv/bin/python benchmarks/bench_served_rewards.py --table runs/rewards-test --orchestrator local:smollm2
"""

from __future__ import annotations

import argparse
import json
import random
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="a folder written by `pixplan train collect`")
    parser.add_argument("--orchestrator", default="local:smollm2+orchestrator", help="a local model spec")
    parser.add_argument("--hints", choices=("on", "off"), default="on", help="the step's words as hints")
    parser.add_argument("--split", default=None, help="only the tasks of this split (default: all)")
    parser.add_argument("--plan", default="checklist", help="only the steps of this plan (default: checklist)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many steps, drawn at random (seed 0)")
    parser.add_argument("--show", action="store_true", help="print each step's served call and best action")
    args = parser.parse_args()

    from pixplan.graph.models import load_chat_model
    from pixplan.training.orchestrator_data import PromptBuilder, served_tools, step_groups
    from pixplan.training.reward_fn import TableReward

    groups = {key: rows for key, rows in step_groups(args.table, args.split).items() if key[1] == args.plan}
    keys = sorted(groups)
    if args.limit:
        keys = sorted(random.Random(0).sample(keys, min(args.limit, len(keys))))
    builder, specs = PromptBuilder(args.table), served_tools()
    reward = TableReward(args.table)
    chat = load_chat_model(args.orchestrator)
    served, best, hits, seconds = [], [], 0, 0.0
    for key in keys:
        start = time.perf_counter()
        bound = chat.bind_tools(specs, **builder.options(*key), hints=args.hints == "on")
        message = bound.invoke(builder.messages(*key))
        seconds += time.perf_counter() - start
        completion = [{"role": "assistant", "tool_calls": message.tool_calls}]
        value = reward.reward(completion, key[0], key[2], key[1])
        top = groups[key][0]
        served.append(value if value is not None else 0.0)
        best.append(top["reward"])
        hits += value is not None and value >= top["reward"] - 1e-9
        if args.show:
            call = message.tool_calls[0] if message.tool_calls else {}
            args_shown = {k: v for k, v in call.get("args", {}).items() if k != "image_id"}
            print(f"{key[0]} {key[2]}: {value} / {top['reward']:.3f}  {call.get('name')} {json.dumps(args_shown)}"
                  f"  best: {top['tool']} {top['region']} {top['preset']}", flush=True)
    count = max(1, len(keys))
    print(
        json.dumps(
            {
                "table": args.table,
                "orchestrator": args.orchestrator,
                "hints": args.hints,
                "steps": len(keys),
                "mean_served_reward": round(sum(served) / count, 4),
                "mean_best_reward": round(sum(best) / count, 4),
                "served_is_best": round(hits / count, 3),
                "judged_live": reward.live,
                "seconds_per_step": round(seconds / count, 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
