"""`pixplan ui` without a browser: the command loads nothing heavy until it runs, and refuses bad flags with
one line before gradio or any model loads (the page itself is tested in a real browser: test_ui_browser.py).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from pixplan.training.cli import main


def test_the_ui_command_loads_no_gradio_and_no_torch_until_it_runs():
    code = (
        "import sys; from pixplan.training.cli import build_parser; import pixplan.graph.ui; build_parser();"
        "heavy = [m for m in ('gradio', 'torch', 'transformers') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--port", "70000"], "--port must be from 1 to 65535"),
        (["--planner", "nosuch:model"], "nosuch"),
        (["--max-retries", "-1"], "max_retries_per_step (--max-retries) must be an integer from 0 to 10"),
        (["--db", "{tmp}"], "is a directory"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(flags, fragment, tmp_path, capsys):
    flags = [flag.format(tmp=tmp_path) for flag in flags]
    assert main(["ui", "--store", str(tmp_path / "store"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pixplan ui: ") and fragment in err and "\n" not in err
