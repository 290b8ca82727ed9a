"""What the store's PNG compression costs: seconds per put and file size, against uncompressed PNGs.

    .venv/bin/python benchmarks/bench_store.py

For a photograph (scikit-image's astronaut, scaled to 1000 x 1000) and for an ad-like image (flat gradient
backdrop, a band, a pasted photo: what pixplan's tasks look like) at 1 and 16 megapixels, best of 5 puts into a
fresh store each time: the store's settings (`FAST_PNG`) beside zlib level 0 (what the store wrote before).
"""

from __future__ import annotations

import os
import tempfile
import time

import cv2
import numpy as np
import skimage.data
from PIL import Image

from pixplan.tools import store as store_module
from pixplan.tools.store import ImageStore

LEVEL_0 = [cv2.IMWRITE_PNG_COMPRESSION, 0, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]


def photo(side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((side, side)))


def ad(side: int) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, side, dtype=np.float32)[:, None, None]
    canvas = ((1 - ramp) * np.array([235, 225, 200]) + ramp * np.array([200, 170, 120])).astype(np.uint8)
    canvas = np.ascontiguousarray(np.broadcast_to(canvas, (side, side, 3)))
    canvas[int(0.72 * side) : int(0.88 * side)] = (30, 70, 50)
    inset = photo(side // 2)
    canvas[side // 8 : side // 8 + side // 2, side // 4 : side // 4 + side // 2] = inset
    return canvas


def best_put(pixels: np.ndarray, params: list[int]) -> tuple[float, int]:
    store_module.FAST_PNG[:] = params
    best, size = float("inf"), 0
    for _ in range(5):
        with tempfile.TemporaryDirectory() as folder:
            store = ImageStore(folder)
            start = time.perf_counter()
            ref = store.put_array(pixels)
            best = min(best, time.perf_counter() - start)
            size = store.path(ref["id"]).stat().st_size
    return best, size


def main() -> None:
    fast = list(store_module.FAST_PNG)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name, pixels in (("photo 1 MP", photo(1000)), ("ad 1 MP", ad(1000)), ("ad 16 MP", ad(4000))):
        old_seconds, old_size = best_put(pixels, LEVEL_0)
        new_seconds, new_size = best_put(pixels, fast)
        print(
            f"{name}: level 0 {old_seconds:.3f} s/put, {old_size / 2**20:.1f} MiB; store settings "
            f"{new_seconds:.3f} s/put, {new_size / 2**20:.2f} MiB (+{new_seconds - old_seconds:.3f} s, "
            f"{old_size / new_size:.1f}x smaller)"
        )
    store_module.FAST_PNG[:] = fast


if __name__ == "__main__":
    main()
