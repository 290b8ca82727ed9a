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


@pytest.mark.network_local
@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_the_ui_keeps_its_threads_in_postgres(tmp_path, make_ad):
    """`pixplan ui --db postgresql://...`: the assistant the page runs keeps its thread on a real PostgreSQL
    server, so the app started again (a new connection) finds the conversation and its versions."""
    from pg_server import postgres_server, why_no_postgres

    if why_no_postgres():
        pytest.skip(f"no PostgreSQL server: {why_no_postgres()}")
    from tiny_lm import tiny_causal_lm, tiny_tokenizer

    from pixplan.graph.api import open_checkpointer
    from pixplan.graph.context import Context
    from pixplan.graph.ui import Assistant, human_turn

    folder = tmp_path / "tiny-lm"
    tiny_causal_lm().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    image = tmp_path / "ad.png"
    make_ad(size=(256, 256))[0].save(image)
    model = f"local:{folder}"
    context = Context(
        planner_model=model,
        orchestrator_model=model,
        store_dir=str(tmp_path / "store"),
        num_plan_candidates=1,
    )
    turn = human_turn("recolor the background green", str(image))
    with postgres_server() as url:
        with open_checkpointer(url) as saver:
            replies = list(Assistant(context=context, checkpointer=saver).stream("t1", turn, approve=False))
        kind, values = replies[-1]
        assert kind == "done" and values["versions"][0]["goal"] is None
        assert [m.type for m in values["messages"]] == ["human", "ai"]
        assert any(kind == "event" and value["event"] == "judged" for kind, value in replies)  # it edited
        with open_checkpointer(url) as saver:  # the app restarted
            restarted = Assistant(context=context, checkpointer=saver)
            again = restarted.graph.get_state({"configurable": {"thread_id": "t1"}}).values
        assert again["versions"] == values["versions"] and again["messages"] == values["messages"]
