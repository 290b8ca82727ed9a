"""Load check: concurrent edits on one SQLite db and one store, and concurrent clients of `pixplan mcp --http`.

    .venv/bin/python benchmarks/bench_load.py                       # N=4 edits, N=4 MCP clients, 200 calls
    .venv/bin/python benchmarks/bench_load.py --edits 4 --clients 4 --calls 200

Edits: N processes run the scripted eco edit of tests/graph_fakes.py (fake planner and orchestrator, the metric
judge, real tools, real SQLite checkpoints) at once, each with its own thread id, on one `--db` and one store.
Every run must finish with the same result image as a run alone, with no "database is locked".

MCP: one `pixplan mcp --http` server; N clients, each in its own thread with its own session, loop over
import_image (a base64 PNG of a colour unique to that call) and replace_background (solid colour on the whole
image) until `--calls` calls are made in all. Each answer is checked: the import's id is the one the store
computes for those pixels, the painted image's preview holds exactly the colour asked. Prints throughput,
p50/p95 latency per tool, and the server's peak RSS (sampled every 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


class PeakRss:
    """Samples a process's resident memory in a thread; `peak` is the largest seen (MiB)."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss / 2**20)
            except psutil.Error:
                return
            time.sleep(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def bench_edits(count: int, folder: Path) -> None:
    store, db = folder / "store", folder / "runs.sqlite"
    script = ROOT / "tests" / "graph_fakes.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "HF_HUB_OFFLINE": "1"}

    def launch(thread_id: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, str(script), str(store), str(db), thread_id, "run"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip

    alone = launch("alone")
    out, err = alone.communicate(timeout=600)
    assert alone.returncode == 0, err
    expected = json.loads(out.strip().splitlines()[-1])
    start = time.perf_counter()
    runs = [launch(f"load-{index}") for index in range(count)]
    peaks = [PeakRss(run.pid) for run in runs]
    answers = [run.communicate(timeout=600) for run in runs]
    wall = time.perf_counter() - start
    rss = [peak.stop() for peak in peaks]
    locked = sum("database is locked" in out + err for out, err in answers)
    results = [json.loads(out.strip().splitlines()[-1]) if run.returncode == 0 else None for run, (out, _) in
               zip(runs, answers, strict=True)]  # fmt: skip
    correct = sum(result == expected for result in results)
    import sqlite3

    with sqlite3.connect(db) as connection:
        threads = {row[0] for row in connection.execute("select distinct thread_id from checkpoints")}
    print(f"edits: {count} concurrent on one db and one store: {correct}/{count} same result as alone "
          f"({expected['status']}, {expected['result'][:8]}), 'database is locked': {locked}, "
          f"threads in db: {len(threads)}, wall {wall:.2f} s, peak RSS per process {max(rss):.0f} MiB")  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def png_b64(color: tuple[int, int, int], size=(96, 64)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


async def client(
    port: int, index: int, calls: int, latencies: dict[str, list[float]], errors: list[str]
) -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    from pixplan.tools.store import pixel_hash

    async with (
        streamable_http_client(f"http://127.0.0.1:{port}/mcp/") as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        for round_ in range(calls // 2):
            color = (index * 50 % 256, round_ % 256, (index + round_) * 7 % 256)
            paint = (255 - color[0], 255 - color[1], 255 - color[2])
            started = time.perf_counter()
            imported = await session.call_tool("import_image", {"source": png_b64(color)})
            latencies["import_image"].append(time.perf_counter() - started)
            expected_id = pixel_hash(Image.new("RGB", (96, 64), color))
            if imported.isError or imported.structuredContent["id"] != expected_id:
                errors.append(f"client {index}: import {imported.content[0].text[:120]}")
                continue
            started = time.perf_counter()
            painted = await session.call_tool(
                "replace_background",
                {
                    "image_id": expected_id,
                    "region": "whole",
                    "fill": "solid",
                    "color": "#" + bytes(paint).hex(),
                },
            )
            latencies["replace_background"].append(time.perf_counter() - started)
            if painted.isError:
                errors.append(f"client {index}: paint {painted.content[0].text[:120]}")
                continue
            (block,) = [item for item in painted.content if item.type == "image"]
            pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(block.data))).convert("RGB"))
            if painted.structuredContent["parent"] != expected_id or not (pixels == paint).all():
                errors.append(f"client {index}: wrong pixels or lineage after round {round_}")


def bench_mcp(count: int, calls: int, folder: Path) -> None:
    port = free_port()
    store = folder / "mcp-store"
    server = subprocess.Popen(
        [sys.executable, "-m", "pixplan.training.cli", "mcp", "--http", "--port", str(port), "--store", str(store)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=folder,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"the MCP server did not start: {server.stderr.read().decode()}"
                    ) from None
                time.sleep(0.2)
        rss = PeakRss(server.pid)
        idle = psutil.Process(server.pid).memory_info().rss / 2**20
        latencies: dict[str, list[float]] = {"import_image": [], "replace_background": []}
        errors: list[str] = []
        share = [calls // count + (1 if index < calls % count else 0) for index in range(count)]
        threads = [
            threading.Thread(target=lambda i=i: asyncio.run(client(port, i, share[i], latencies, errors)))
            for i in range(count)
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        peak = rss.stop()
    finally:
        server.terminate()
        _, server_err = server.communicate(timeout=30)
    made = sum(len(values) for values in latencies.values())
    every = [value for values in latencies.values() for value in values]
    print(f"mcp: {count} clients over streamable HTTP, {made} calls in {wall:.2f} s = {made / wall:.1f} calls/s; "
          f"latency p50 {percentile(every, 50) * 1000:.0f} ms, p95 {percentile(every, 95) * 1000:.0f} ms")  # fmt: skip
    for name, values in latencies.items():
        print(f"  {name}: {len(values)} calls, p50 {percentile(values, 50) * 1000:.0f} ms, "
              f"p95 {percentile(values, 95) * 1000:.0f} ms")  # fmt: skip
    print(
        f"  wrong or failed results: {len(errors)}; 'database is locked' in server log: "
        f"{server_err.decode().count('database is locked')}; server RSS idle {idle:.0f} MiB, peak {peak:.0f} MiB"
    )
    for error in errors[:5]:
        print("  " + error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=4, help="concurrent edits (default 4)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent MCP clients (default 4)")
    parser.add_argument("--calls", type=int, default=200, help="MCP calls in all (default 200)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pixplan-load-") as folder:
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        bench_edits(args.edits, Path(folder))
        bench_mcp(args.clients, args.calls, Path(folder))


if __name__ == "__main__":
    main()
