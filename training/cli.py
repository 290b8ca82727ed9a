"""The `pixplan` command line: one subcommand per job, each defined beside the code it runs.

Each command module has `register(subparsers)`, which adds its parser and sets `func`; heavy imports happen
inside the command functions, so `pixplan --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys

from pixplan.graph import cli as edit_cli
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
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixplan", description="Plan, execute and judge image edits from abstract goals."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
