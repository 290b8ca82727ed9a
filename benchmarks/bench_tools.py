# ruff: noqa: E402  (thread limits must be set before NumPy and OpenCV load)
"""Speed and memory of every classical tool on a 1024x1024 image, on one CPU core.

    .venv/bin/python benchmarks/bench_tools.py            # all tools, 5 timed runs each
    .venv/bin/python benchmarks/bench_tools.py --runs 10 --tools recolor adjust_tone

Each tool is called the way an agent calls it (`tool.invoke` with a tool call), so the time includes
`apply_edit`: loading the PNG from the store, resolving the region, the pixel edit, the feathered blend, the
content hash and writing the result. The `apply_edit overhead` row is that frame around an edit that costs
nothing, and the `pixels only` rows are the recolour and tone arithmetic alone on the whole image. Two regions are timed: `whole` (no blend) and a box
covering 64% of the image (blend and feather). Times are the best of the runs, as CPU time of this process
(what one core spends, whatever else the machine runs) and wall time. Memory is the tracemalloc peak of one call
(Python objects and NumPy/OpenCV arrays). Text replacement runs end to end (OCR of the slogan's box, erasing
the letters, rendering the new text) on a rendered one-megapixel ad.
"""

from __future__ import annotations

import os

# One core: set before NumPy and OpenCV load their thread pools.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse
import importlib.util
import resource
import tempfile
import time
import tracemalloc
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pixplan.tools import TOOLS, ImageStore
from pixplan.tools.classical import recolor_pixels, tone_pixels
from pixplan.tools.editing import apply_edit
from pixplan.tools.regions import save_catalog

SIZE = 1024
BOX = [0.1, 0.1, 0.9, 0.9]
#: Where `ad()` draws its slogan, with some room around it.
SLOGAN = [0.03, 0.815, 0.97, 0.91]

#: Arguments per tool (besides image_id and region): a typical call.
CALLS: dict[str, dict[str, Any]] = {
    "recolor": {"color": "forestgreen"},
    "adjust_tone": {"brightness": 0.2, "contrast": 0.1, "saturation": 0.3, "warmth": 0.2},
    "replace_background": {"fill": "linear_gradient", "color": "#e8f5e9", "second_color": "#2e7d32"},
    "remove_object": {},
    "stylize": {"style": "vintage"},
    "blur": {"radius": 8.0},
    "sharpen": {"amount": 1.0},
    "replace_text": {"text": "GO GREEN"},
    "add_text": {"text": "Summer sale"},
    "add_badge": {"text": "-20%", "shape": "starburst"},
    "add_icon": {"icon": "leaf"},
}
#: Regions timed per tool ('whole' makes no sense for object removal).
REGIONS: dict[str, list[Any]] = {"remove_object": [[0.4, 0.4, 0.6, 0.6]]}


def photo() -> Image.Image:
    """scikit-image's astronaut photo, enlarged to 1024x1024."""
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((SIZE, SIZE), Image.Resampling.BICUBIC)


def ad() -> Image.Image:
    """A rendered one-megapixel ad: a photo with a slogan band and a price."""
    image = photo()
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 820, SIZE, SIZE], fill=(250, 245, 235))
    draw.text((60, 850), "FRESH DEALS TODAY", fill=(20, 20, 20), font=ImageFont.load_default(72))
    draw.text((60, 940), "only 9.99", fill=(180, 20, 20), font=ImageFont.load_default(48))
    return image


def time_call(function, forget, runs: int) -> tuple[float, float]:
    """Best (CPU, wall) milliseconds of `runs` calls of `function()`, after one warm-up call.

    The best of several runs (as `timeit` reports) is the least disturbed by other processes on a shared
    machine. `forget(result)` deletes what the call stored, outside the timed part, so every timed call really
    writes its output (the store skips writing an image it already holds).
    """
    forget(function())
    cpu_samples, wall_samples = [], []
    for _ in range(runs):
        cpu, wall = time.process_time(), time.perf_counter()
        result = function()
        cpu_samples.append((time.process_time() - cpu) * 1000)
        wall_samples.append((time.perf_counter() - wall) * 1000)
        forget(result)
    return min(cpu_samples), min(wall_samples)


def peak_memory(function, forget) -> float:
    """Peak memory allocated during one call (tracemalloc: Python objects and NumPy/OpenCV arrays), in MiB."""
    tracemalloc.start()
    result = function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    forget(result)
    return peak / 2**20


def invoker(tool, store_dir: str, image_id: str, region: Any, args: dict[str, Any]):
    config = {"configurable": {"store_dir": store_dir}}
    call = {"type": "tool_call", "id": "bench", "name": tool.name, "args": {"image_id": image_id, **args}}
    if region is not None:
        call["args"]["region"] = region

    def run() -> str:
        message = tool.invoke(call, config=config)
        if message.status == "error":
            raise RuntimeError(f"{tool.name}: {message.content}")
        return message.artifact["id"]

    return run


def overhead_invoker(store_dir: str, image_id: str, region: Any):
    """apply_edit around an array edit that returns a precomputed image: the frame every classical tool pays."""
    config = {"configurable": {"store_dir": store_dir}}
    flipped = np.ascontiguousarray(ImageStore(store_dir).get_array(image_id)[:, ::-1])

    def run() -> str:
        _, ref = apply_edit(
            tool="bench",
            image_id=image_id,
            region=region,
            args={},
            edit_array=lambda *_: flipped,
            config=config,
        )
        return ref["id"]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=5, help="timed runs per tool and region (median is shown)"
    )
    parser.add_argument("--tools", nargs="*", help="only these tools")
    options = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cv2.setNumThreads(1)

    store_dir = tempfile.mkdtemp(prefix="pixplan-bench-")
    store = ImageStore(store_dir)
    ref = store.put(photo())
    save_catalog(
        store,
        {
            "image_id": ref["id"],
            "width": SIZE,
            "height": SIZE,
            "regions": [{"id": "r1", "box": [0.25, 0.05, 0.8, 1.0], "kind": "object", "label": "astronaut"}],
        },
    )
    megapixels = SIZE * SIZE / 1e6
    rows: list[tuple[str, str, float, float, float]] = []

    def forget(image_id: str) -> None:
        if image_id and image_id != ref["id"]:
            for suffix in (".png", ".json"):
                (store.root / f"{image_id}{suffix}").unlink(missing_ok=True)

    def measure(name: str, region_label: str, run) -> None:
        cpu, wall = time_call(run, forget, options.runs)
        rows.append((name, region_label, cpu / megapixels, wall / megapixels, peak_memory(run, forget)))

    for region in ("whole", BOX):
        measure("apply_edit overhead", _label(region), overhead_invoker(store_dir, ref["id"], region))
    pixels = np.ascontiguousarray(store.get_array(ref["id"]))
    everywhere = np.ones(pixels.shape[:2], dtype=np.float32)
    green = (34, 139, 34)
    measure(
        "recolor, pixels only", "whole", _discard(lambda: recolor_pixels(pixels, everywhere, green, 0.0, 1.0))
    )
    measure("adjust_tone, pixels only", "whole", _discard(lambda: tone_pixels(pixels, 0.2, 0.1, 0.3, 0.2)))
    for tool in TOOLS:
        if options.tools and tool.name not in options.tools:
            continue
        if tool.name == "replace_text":
            continue
        for region in REGIONS.get(tool.name, ["whole", BOX]):
            measure(
                tool.name,
                _label(region),
                invoker(tool, store_dir, ref["id"], region, CALLS.get(tool.name, {})),
            )

    text_tool = next((tool for tool in TOOLS if tool.name == "replace_text"), None)
    if text_tool is not None and (not options.tools or "replace_text" in options.tools):
        ad_ref = store.put(ad())
        _text_region_run(text_tool, store, store_dir, ad_ref["id"], measure)

    print(f"1024x1024 image, one core (cv2 threads {cv2.getNumThreads()}), best of {options.runs} runs")
    print(f"{'tool':<26}{'region':<9}{'CPU ms/MP':>10}{'wall ms/MP':>11}{'peak MiB':>9}")
    for name, region_label, cpu, wall, traced in rows:
        print(f"{name:<26}{region_label:<9}{cpu:>10.1f}{wall:>11.1f}{traced:>9.1f}")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS {peak_rss:.0f} MiB")


def _text_region_run(text_tool, store: ImageStore, store_dir: str, image_id: str, measure) -> None:
    """Replace the ad's slogan end to end: the tool reads the box with OCR, erases the letters, renders anew.

    Also timed: building the whole region catalog (OCR of the whole image, saliency, GrabCut), which an agent
    does once per image rather than once per edit.
    """
    from pixplan.tools.perception import build_catalog

    measure(
        "replace_text (OCR box)",
        "slogan",
        invoker(text_tool, store_dir, image_id, SLOGAN, CALLS["replace_text"]),
    )

    def catalog() -> str:
        build_catalog(store, image_id)
        return ""  # nothing to forget: the catalog's masks are written once

    measure("build_catalog (perceive)", "whole", catalog)


def _discard(function):
    """A call that stores nothing: its result is dropped, and there is nothing to forget."""

    def run() -> str:
        function()
        return ""

    return run


def _label(region: Any) -> str:
    return region if isinstance(region, str) else f"box {_area(region):.0%}"


def _area(box: list[float]) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


if __name__ == "__main__":
    if importlib.util.find_spec("skimage") is None:
        raise SystemExit("the benchmark needs scikit-image: pip install -e '.[eval]'")
    main()
