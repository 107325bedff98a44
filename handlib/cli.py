"""``python -m handlib``: one argparse tree; each subsystem adds its own commands.

A module listed in ``COMMAND_MODULES`` defines ``add_commands(subparsers)``; one listed in
``BENCH_MODULES`` defines ``add_bench(subparsers)`` for ``python -m handlib bench ...``.
Each registered sub-parser sets ``func`` (called with the parsed args, returns an exit code).
Bad choices exit with code 2 and argparse's list of valid values.

Building the parser must stay light (``python -m handlib --help`` imports no torch or numpy): those
modules import heavy things inside the command functions, and take their choices from light
modules or from static lists that tests/test_cli_help.py checks against the real ones.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from handlib import errors

COMMAND_MODULES = [
    "handlib.book.cli",
    "handlib.synth.cli",
    "handlib.data.cli",
    "handlib.models.summary",
    "handlib.train_cli",
    "handlib.leaderboard_cli",
]
BENCH_MODULES: list[str] = ["handlib.synth.cli", "handlib.infer_cli", "handlib.train_cli", "handlib.data.bench"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m handlib",
        description="handlib: run and build the book, render data, train, evaluate, benchmark.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    bench = sub.add_parser("bench", help="print speed figures (frames/s, samples/s)",
                           description="Benchmarks: scripts that print figures.")
    bench_sub = bench.add_subparsers(dest="bench_target", metavar="TARGET", required=True)
    for name in BENCH_MODULES:
        importlib.import_module(name).add_bench(bench_sub)
    parser.epilog = "actions:\n" + "\n".join(
        f"  {command} {' | '.join(actions)}" for command, actions in _actions(sub).items())
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def _actions(sub) -> dict[str, list[str]]:
    """Each command that has actions of its own (book run, published fetch...) -> their names."""
    found = {}
    for command, parser in sub.choices.items():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                found[command] = list(action.choices)
    return found




# What a user can fix (a bad parameter, file, folder, checkpoint): one line and exit code 2, no traceback.
REPORTED_ERRORS = (errors.UsageError, errors.CheckpointError, errors.DatasetFormatError,
                   errors.PublishedFileMissing, errors.LabelFileError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except REPORTED_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
