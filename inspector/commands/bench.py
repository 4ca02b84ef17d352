"""`inspector bench BENCH ...`: speed benchmarks; each prints medians/percentiles (ratios where a baseline runs).

`inspector bench CKPT DATA` is short for `inspector bench model CKPT DATA`.
"""

# Each benchmark lives in inspector/commands/bench_<name>.py with `register(subparsers)`, listed in BENCHES;
# DEFAULT_BENCH takes arguments that do not start with a benchmark's name.

from __future__ import annotations

import argparse
import difflib
import importlib
from pathlib import Path

from model.errors import InspectorError

BENCHES = ["serve", "report", "model"]
DEFAULT_BENCH: str | None = "model"  # a name from BENCHES


def _parser() -> argparse.ArgumentParser:
    from inspector.cli import _Parser

    parser = _Parser(prog="inspector bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", parser_class=_Parser)
    sub.required = True
    for name in BENCHES:
        importlib.import_module(f"inspector.commands.bench_{name}").register(sub)
    return parser


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks: " + ", ".join(BENCHES), description=__doc__)
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="BENCH ...", help="the benchmark and its arguments")
    p.format_help = lambda: _parser().format_help()  # `inspector bench --help` lists the benchmarks

    def take_all(args=None, namespace=None):
        """Every argument goes to the benchmark's own parser: argparse's REMAINDER takes none that starts with "-", so
        `inspector bench --json CKPT DATA` was refused as "inspector: unrecognized arguments: --json CKPT DATA"."""
        namespace = namespace if namespace is not None else argparse.Namespace()
        namespace.args, namespace.func = list(args or []), run
        return namespace, []

    p.parse_known_args = take_all


def run(args: argparse.Namespace) -> int:
    argv = list(args.args)
    if DEFAULT_BENCH and argv and argv[0] not in BENCHES and argv[0] not in ("-h", "--help"):
        near = difflib.get_close_matches(argv[0], BENCHES, n=1)
        if near and not argv[0].startswith("-") and not Path(argv[0]).exists():  # `bench reprot` said "data 5: no such folder"
            raise InspectorError(f"bench {argv[0]}: no such benchmark; did you mean `inspector bench {near[0]}`?")
        argv.insert(0, DEFAULT_BENCH)  # `bench --json CKPT DATA` too: the default benchmark's options
    ns = _parser().parse_args(argv)
    return int(ns.func(ns) or 0)
