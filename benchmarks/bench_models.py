"""Time the offline default model: SmolLM2-135M-Instruct's first load (GGUF -> safetensors), a cached load,
one constrained Plan and one constrained tool call.

    .venv/bin/python benchmarks/bench_models.py            # first load into a fresh temporary cache
    .venv/bin/python benchmarks/bench_models.py --threads 2  # force 2 torch threads (default: 1 when busy)

Prints one JSON object with seconds, tokens and the outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--cache", default=None, help="pixplan cache folder (default: a fresh temporary one)")
    args = parser.parse_args()
    os.environ["PIXPLAN_CACHE"] = args.cache or tempfile.mkdtemp(prefix="pixplan-bench-")

    import torch
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_core.tools import tool

    from pixplan.graph.local import LocalChatModel
    from pixplan.graph.models import smollm2_dir
    from pixplan.graph.schemas import Plan

    @tool
    def recolor(image_id: str, region: str | list[float], color: str) -> str:
        """Change the colour of a region.

        Args:
            image_id: The image to edit.
            region: A region id from the catalog, 'whole', 'background' or a box.
            color: The new colour.
        """
        return "ok"

    @tool
    def replace_text(image_id: str, region: str | list[float], text: str) -> str:
        """Replace the text of a text region with new text.

        Args:
            image_id: The image to edit.
            region: The text region's id.
            text: The new text.
        """
        return "ok"

    figures: dict = {
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
    }
    start = time.perf_counter()
    folder = smollm2_dir()
    figures["first_load_convert_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    model = LocalChatModel.from_pretrained(folder, num_threads=args.threads)
    figures["cached_load_s"] = round(time.perf_counter() - start, 2)
    forwards = []  # model forward passes: a load-independent measure of decoding work
    model_forward = model.model.forward

    def counted_forward(*args, **kwargs):
        forwards.append(kwargs["input_ids"].shape[1])
        figures["torch_threads_while_generating"] = torch.get_num_threads()
        return model_forward(*args, **kwargs)

    model.model.forward = counted_forward

    catalog = (
        "Image 0123456789abcdef01234567 (768x768). Region catalog:\n"
        'r1 text "SUMMER SALE" [0.1, 0.05, 0.9, 0.2]\nr2 object "bottle" [0.3, 0.3, 0.7, 0.9]\nr3 background\n'
    )
    plan_prompt = [
        SystemMessage("You plan image edits: a checklist of requirements, then atomic steps."),
        HumanMessage(
            "Goal: make this advertisement more eco-friendly.\n"
            + catalog
            + "Tools the steps can use:\n- recolor: Change the colour of a region.\n"
            + "- replace_text: Replace the text of a text region with new text."
        ),
    ]
    structured = model.with_structured_output(Plan, include_raw=True)
    start = time.perf_counter()
    result = structured.invoke(plan_prompt)
    figures["plan_s"] = round(time.perf_counter() - start, 2)
    figures["plan_forward_passes"] = len(forwards)
    figures["plan_tokens"] = result["raw"].usage_metadata
    figures["plan"] = result["parsed"].model_dump()

    step = [HumanMessage(catalog + 'Step s1: replace the slogan text in r1 with "GO GREEN".')]
    bound = model.bind_tools([recolor, replace_text])
    for label in ("tool_call", "tool_call_again"):  # the second reuses the prompt's KV cache
        forwards.clear()
        start = time.perf_counter()
        message = bound.invoke(step)
        figures[f"{label}_s"] = round(time.perf_counter() - start, 2)
        figures[f"{label}_forward_passes"] = f"{len(forwards)} (first feeds {forwards[0]} tokens)"
    figures["tool_call_tokens"] = message.usage_metadata
    figures["tool_call"] = message.tool_calls[0]
    start = time.perf_counter()
    model.invoke("Say hello.", max_tokens=20)
    figures["free_text_20_tokens_s"] = round(time.perf_counter() - start, 2)
    figures["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    main()
