"""The `pixplan` command line: one subcommand per job, each defined beside the code it runs.

Each command module has `register(subparsers)`, which adds its parser and sets `func`; heavy imports happen
inside the command functions, so `pixplan --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys

from pixplan.graph import cli as edit_cli
from pixplan.graph import ui as ui_cli
from pixplan.tools import cli as tools_cli
from pixplan.tools import mcp_server
from pixplan.training import eval_cli, train_cli

#: The modules that define subcommands, in the order `pixplan --help` lists them.
COMMAND_MODULES = (
    edit_cli,  # edit
    eval_cli,  # eval, tasks
    train_cli,  # train
    tools_cli,  # tools, catalog
    mcp_server,  # mcp
    ui_cli,  # ui
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixplan", description="Plan, execute and judge image edits from abstract goals."
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error instead of its one-line message"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand. Bad input (pixplan's own errors, which all say what to change, and the OS's refusals)
    ends as one line on stderr and exit code 2, here and nowhere else; `--debug` shows the traceback."""
    from langchain_core.tools import ToolException

    from pixplan.tools.calls import error_text

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, ToolException, OSError) as error:
        if args.debug:
            raise
        print(f"pixplan {args.command}: {error_text(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
