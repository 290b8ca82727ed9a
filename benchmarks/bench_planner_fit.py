"""How well a planner adapter fits its training targets: the teacher-forced loss of each task's target plan
(what `pixplan train planner --targets checklist` trains on), and the tokens it still gets wrong.

A planner that writes "reads as green" for a winter goal has not learnt the goal's colour: this prints, per task,
the target's total loss in nats, its mean a token, and the costliest tokens with what the model would rather
write there (greedy), so a fault is seen as the tokens behind it, in seconds a task instead of an eval.

    .venv/bin/python benchmarks/bench_planner_fit.py --table runs/rewards --adapter planner --task winter-000
    .venv/bin/python benchmarks/bench_planner_fit.py --table runs/rewards --adapter runs/planner --limit 12
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="a folder written by `pixplan train collect`")
    parser.add_argument("--adapter", default="planner", help="'planner' (shipped), an adapter folder, or 'none'")
    parser.add_argument("--split", default="train", help="the tasks of this split (default: train)")
    parser.add_argument("--task", action="append", default=[], help="only this task id (repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N tasks of the table")
    parser.add_argument("--top", type=int, default=6, help="the costliest tokens shown per task")
    args = parser.parse_args()

    from types import SimpleNamespace

    import torch
    from peft import PeftModel

    from pixplan.graph.local.chat_format import render_prompt
    from pixplan.graph.models import adapter_dir
    from pixplan.training.train_orchestrator import load_base
    from pixplan.training.train_planner import PlannerData, planner_examples

    rows, _ = planner_examples(PlannerData(table=args.table, split=args.split, samples=0, limit=args.limit))
    rows = [row for row in rows if not args.task or row["task_id"] in args.task]
    model, tokenizer = load_base(SimpleNamespace(model_name_or_path=None, dtype=None), on_cpu=True)
    if args.adapter != "none":
        model = PeftModel.from_pretrained(model, str(adapter_dir(args.adapter)))
    model.eval()
    totals, tokens, started = [], 0, time.perf_counter()
    for row in rows:
        prompt = tokenizer(render_prompt(tokenizer, json.loads(row["messages"])), add_special_tokens=False)
        target = tokenizer(row["completion"], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt["input_ids"] + target])
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt["input_ids"]) - 1 : -1].float()
        nll = -torch.log_softmax(logits, -1)[torch.arange(len(target)), torch.tensor(target)]
        totals.append(float(nll.sum()))
        tokens += len(target)
        print(f"{row['task_id']}: {nll.sum():.1f} nats over {len(target)} tokens ({nll.mean():.3f} a token)")
        for value, index in zip(*torch.topk(nll, min(args.top, len(target))), strict=True):
            before = tokenizer.decode(target[max(0, int(index) - 6) : int(index)])
            wanted, greedy = tokenizer.decode([target[index]]), tokenizer.decode([int(logits[index].argmax())])
            print(f"    {float(value):5.2f}  ...{before!r} -> {wanted!r} (the model: {greedy!r})")
    print(
        json.dumps(
            {
                "table": args.table,
                "adapter": args.adapter,
                "tasks": len(rows),
                "mean_nats_a_target": round(sum(totals) / max(1, len(totals)), 2),
                "mean_nats_a_token": round(sum(totals) / max(1, tokens), 4),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
