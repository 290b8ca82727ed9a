"""The `pixplan` command line: one subcommand per job, each defined beside the code it runs.

Each command module has `register(subparsers)`, which adds its parser and sets `func`; heavy imports happen
inside the command functions, so `pixplan --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# The modules that define subcommands, in the order `pixplan --help` lists them.
COMMAND_MODULES = (
    "pixplan.graph.cli",  # edit
    "pixplan.training.eval_cli",  # eval, tasks
    "pixplan.tools.cli",  # tools, catalog
    "pixplan.tools.mcp_server",  # mcp
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixplan", description="Plan, execute and judge image edits from abstract goals."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
