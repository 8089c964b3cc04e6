"""The `wav` command line: parses arguments and dispatches to the library; nothing else.

Each module in COMMAND_MODULES owns a set of commands and exposes `register(top, groups)`, where
`top` is the top-level subparsers object and `groups` maps a command group name ("data", "train",
"eval", "reproduce", "theory", "robot") to that group's subparsers object.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys

from wav.cli.checks import _one_line_error, add_parser

GROUPS = {
    "data": "inspect and check transition files",
    "train": "train a model",
    "eval": "evaluate a model",
    "reproduce": "multi-seed reproductions of the paper's experiments",
    "theory": "numerical checks of the paper's propositions",
    "robot": "manipulation worlds and their data (extras: robot, maniskill)",
}
COMMAND_MODULES = ("wav.cli.data", "wav.cli.models", "wav.cli.acquisition", "wav.cli.asymmetry", "wav.cli.theory", "wav.cli.robot", "wav.cli.robot_acquisition",
                   "wav.cli.robot_models", "wav.cli.robot_downstream", "wav.cli.robot_online")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wav", description="World Action Verifier: self-improving world models")
    parser.error = functools.partial(_one_line_error, parser)  # unknown options: one line too
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups = {}
    for name, help_ in GROUPS.items():
        p = add_parser(top, name, help=help_, description=help_)
        groups[name] = p.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
        p.set_defaults(func=lambda args, p=p: p.print_help() or 2)
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(top, groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except (ValueError, FileNotFoundError) as e:  # user-facing errors: one clear line, no traceback
        print(f"wav: error: {e}", file=sys.stderr)
        return 1
    return int(rc or 0)
