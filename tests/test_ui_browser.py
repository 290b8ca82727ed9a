"""`pixplan ui` in a real browser: the app runs as a subprocess on a free local port (a tiny random local
model for planner and orchestrator, the metric judge) and headless Chromium, Debian's `chromium` package
driven through Playwright (`executable_path`, no browser download), uses the page as a person would: upload an
image, type a goal with "show me the plan first", edit the plan, run it, read the steps, undo, go back to a
version.

Skips only where there is no browser (`apt-get install chromium`) or no Playwright (`pip install playwright`).
Saves the page as `screenshot.png` in the test's tmp dir; with PIXPLAN_UI_SCREENSHOT=PATH also there (the
README's `docs/ui.png` is made so).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="needs Playwright: pip install playwright")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's Chromium: apt-get install chromium"),
    pytest.mark.network_local,
    pytest.mark.enable_socket,
    pytest.mark.allow_hosts(["127.0.0.1"]),
]

GOAL = "make the background feel like spring"
#: The plan the user types in place of the tiny model's: one step whose typed check the metric judge verifies.
EDITED_PLAN = {
    "checklist": [
        {
            "id": "c1",
            "text": "the background is recoloured green",
            "check": {"type": "changed", "region": "background", "min_fraction": 0.2},
        }
    ],
    "steps": [
        {"id": "s1", "instruction": "Recolor the background green", "serves": ["c1"], "tool": "recolor"}
    ],
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def tiny_model_dir(tmp_path) -> Path:
    from tiny_lm import tiny_causal_lm, tiny_tokenizer

    folder = tmp_path / "tiny-lm"
    tiny_causal_lm().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture
def ui_server(tmp_path, tiny_model_dir):
    """`pixplan ui` on a free port; yields its URL and log; always stopped, its log printed when it fails."""
    port = free_port()
    model = f"local:{tiny_model_dir}"
    command = [
        sys.executable, "-m", "pixplan.training.cli", "ui", "--port", str(port),
        "--planner", model, "--orchestrator", model, "--judge", "metric",
        "--store", str(tmp_path / "store"), "--db", str(tmp_path / "checkpoints.sqlite"),
        "--candidates", "1", "--max-replans", "0", "--max-retries", "1",
    ]  # fmt: skip
    log_path = tmp_path / "server.log"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    with log_path.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180  # importing gradio alone takes 15 s on a busy 2-core machine
        while True:
            if server.poll() is not None:
                pytest.fail(f"pixplan ui exited with {server.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"pixplan ui did not answer within 180 s:\n{log_path.read_text()}")
            time.sleep(0.3)
        yield url, log_path
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def pixels(page, selector: str) -> np.ndarray:
    """The pixels of the image the page shows in `selector`, fetched from its URL as the browser would."""
    source = page.locator(f"{selector} img").first.get_attribute("src")
    body = page.request.get(source).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"), dtype=np.int16)


def wait_for_pixels(
    page, selector: str, expected: np.ndarray, *, equal: bool, timeout: float = 20
) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while True:
        shown = pixels(page, selector)
        same = shown.shape == expected.shape and np.array_equal(shown, expected)
        if same == equal or time.monotonic() > deadline:
            return shown
        time.sleep(0.2)


def test_edit_in_the_browser(ui_server, tmp_path, make_ad):
    from playwright.sync_api import expect, sync_playwright

    url, log_path = ui_server
    upload = tmp_path / "ad.png"
    make_ad(size=(384, 384))[0].save(upload)
    original = np.asarray(Image.open(upload).convert("RGB"), dtype=np.int16)
    started = time.monotonic()
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1500})
                page.set_default_timeout(30_000)
                expect.set_options(timeout=30_000)
                page.goto(url)
                page.locator("#input-image input[type=file]").set_input_files(str(upload))
                expect(page.locator("#input-image img")).to_be_visible()
                page.locator("#goal textarea").fill(GOAL)
                page.locator("#plan-first input[type=checkbox]").check()
                page.locator("#send").click()

                # The plan waits for approval, the tiny model's shown; the user types another and runs it.
                plan_box = page.locator("#plan textarea")
                # The first turn loads both models and decodes the random model's plan to its token limit:
                # 15 s here, over 30 s on a busy CI machine, so it gets its own, longer wait.
                expect(plan_box).to_be_visible(timeout=120_000)
                expect(plan_box).not_to_have_value("")
                assert set(json.loads(plan_box.input_value())) == {"checklist", "steps"}
                chat = page.locator("#chat")
                expect(chat).to_contain_text("Here is the plan")
                expect(chat).to_contain_text("planned (version 1")  # progress streamed before any answer
                plan_box.fill(json.dumps(EDITED_PLAN))
                page.locator("#approve").click()

                versions = page.locator("#versions .thumbnail-item")
                expect(versions).to_have_count(2, timeout=120_000)  # the upload and the edit
                expect(page.locator("#status textarea")).to_have_value("showing version 1")
                expect(chat).to_contain_text("plan edited by the user")
                # The step's line: the tool, and the region it ran on.
                step_line = re.compile(r"tool recolor on (r\d+|background|whole|\[)")
                expect(chat).to_contain_text(step_line)
                expect(chat).to_contain_text("judged: score")
                expect(chat).to_contain_text("Result: version 1, judged 1.00 (passed)")
                edited = wait_for_pixels(page, "#after", original, equal=False)
                assert edited.shape == original.shape and np.abs(edited - original).mean() > 1
                before = pixels(page, "#before")
                assert np.array_equal(before, original)
                # The conversation at its end (the steps and the answer) for the screenshot.
                page.evaluate(
                    "() => document.querySelectorAll('#chat *').forEach("
                    "el => { if (el.scrollHeight > el.clientHeight + 4) el.scrollTop = el.scrollHeight; })"
                )
                page.wait_for_timeout(500)
                page.screenshot(path=str(tmp_path / "screenshot.png"), full_page=True)

                page.locator("#undo").click()  # a turn "undo", read by the chat graph
                expect(chat).to_contain_text("Undone: showing version 0")
                expect(page.locator("#status textarea")).to_have_value("showing version 0")
                assert np.array_equal(wait_for_pixels(page, "#after", original, equal=True), original)
                expect(page.locator("#undo")).to_be_disabled()  # nothing left to take back
                versions.nth(1).click()  # a turn "go to the second version (version 1)"
                expect(chat).to_contain_text("Back: showing version 1")
                expect(page.locator("#status textarea")).to_have_value("showing version 1")
                assert np.array_equal(wait_for_pixels(page, "#after", edited, equal=True), edited)
                with page.expect_download() as download:
                    page.locator("#download").click()
                saved = np.asarray(Image.open(download.value.path()).convert("RGB"), dtype=np.int16)
                assert np.array_equal(saved, edited)
            finally:
                browser.close()
    except BaseException:
        print(f"--- pixplan ui log ({time.monotonic() - started:.1f} s into the test) ---")
        print(log_path.read_text())
        raise
    print(f"browser session: {time.monotonic() - started:.1f} s")
    if os.environ.get("PIXPLAN_UI_SCREENSHOT"):
        shutil.copy(tmp_path / "screenshot.png", os.environ["PIXPLAN_UI_SCREENSHOT"])
