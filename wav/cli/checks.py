"""Argument checks shared by the `wav` commands: every bad input is refused in one line, before any work.

- `add_parser(subparsers, name, ...)`: a command parser whose errors are one line
  (`wav: error: --k: must be an integer >= 1, got '0' (see 'wav eval subgoal --help')`, exit 2) and whose
  help shows every option's default.
- Types for `add_argument(type=...)`: `positive_int`, `non_negative_int`, `int_list(low)`, `seeds`,
  `output_file`, `output_dir`. They raise `CheckError`, which argparse reports with the option's name and
  which is also a ValueError, so a command can call them on a value it computes (one line from `wav.cli.main`).
- `guard(fn)`: a command whose missing extras or unwritable files end in one line, not a traceback.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from pathlib import Path


class CheckError(argparse.ArgumentTypeError, ValueError):
    """A refused argument value: argparse names the option; as a ValueError the CLI prints one line."""


class HelpFormatter(argparse.HelpFormatter):
    """Shows `(default: X)` after every option's help unless the default is None or False."""

    def _get_help_string(self, action):
        help_ = action.help or ""
        shown = not any(action.default is x for x in (None, False, argparse.SUPPRESS)) and "%(default)" not in help_
        if shown and (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)):
            default = ",".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else "%(default)s"
            help_ += f" (default: {default})"
        return help_


def _one_line_error(parser: argparse.ArgumentParser, message: str):
    message = re.sub(r"^argument ([^:]+): ", r"\1: ", message)
    parser.exit(2, f"wav: error: {message} (see '{parser.prog} --help')\n")


def add_parser(subparsers, name: str, **kwargs) -> argparse.ArgumentParser:
    """`subparsers.add_parser` with one-line errors and defaults shown in the help."""
    p = subparsers.add_parser(name, formatter_class=HelpFormatter, **kwargs)
    p.error = functools.partial(_one_line_error, p)
    return p


def _integer(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise CheckError(f"must be an integer >= {low}, got {text!r}") from None
    if value < low:
        raise CheckError(f"must be {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1, ">= 1")


def non_negative_int(text: str) -> int:
    return _integer(text, 0, ">= 0")


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise CheckError(f"must be a number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise CheckError(f"must be a finite number >= 0, got {text!r}")
    return value


def int_list(low: int = 0):
    """A type for comma-separated integers >= low: int_list(1)('200,400') -> (200, 400)."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(x) for x in str(text).split(",") if x.strip())
        except ValueError:
            values = ()
        if not values or min(values) < low:
            raise CheckError(f"must be comma-separated integers >= {low} (e.g. 2,4), got {text!r}")
        return values

    return parse


def seeds(text: str) -> tuple[int, ...]:
    """A seed list in the syntax of wav.stats.parse_seeds ('0-9', '1,3,5', '0-2,7')."""
    from wav.stats import parse_seeds

    try:
        return tuple(parse_seeds(text))
    except ValueError as e:
        raise CheckError(str(e)) from None


def _writable_ancestor(text: str, path: Path) -> None:
    """The nearest existing folder above `path` must be a writable folder (nothing is created)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise CheckError(f"cannot write {text}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CheckError(f"cannot write {text}: folder {parent} is read-only or not ours")


def _absolute(text: str) -> Path:
    if not str(text).strip():
        raise CheckError("empty path; give a path to write to")
    return Path(os.path.abspath(os.path.expanduser(text)))


def output_file(text: str) -> str:
    """A file path that can be written: not a folder, below a writable folder (checked, not created)."""
    path = _absolute(text)
    if path.is_dir():
        raise CheckError(f"{text} is a folder; expected a file path")
    _writable_ancestor(text, path)
    return text


def output_dir(text: str) -> str:
    """A folder path that can be written: an existing writable folder, or one that can be created."""
    path = _absolute(text)
    if path.exists():
        if not path.is_dir():
            raise CheckError(f"{text} is a file; expected a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise CheckError(f"cannot write in {text}: the folder is read-only or not ours")
    else:
        _writable_ancestor(text, path)
    return text


def input_file(text: str) -> str:
    """A file that exists and can be read (checked before any work)."""
    path = Path(os.path.expanduser(str(text)))
    if not str(text).strip():
        raise CheckError("empty path; give a file to read")
    if not path.exists():
        raise CheckError(f"{text}: no such file")
    if path.is_dir():
        raise CheckError(f"{text} is a folder; expected a file")
    if not os.access(path, os.R_OK):
        raise CheckError(f"{text}: not readable")
    return text


def guard(fn):
    """Missing extras and OS errors (permissions, full disk) are the user's: one line, exit 1."""

    @functools.wraps(fn)
    def run(args):
        try:
            return fn(args)
        except ImportError as e:
            print(f"wav: error: {e}", file=sys.stderr)
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            print(f"wav: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1

    return run
