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
    # Every argument goes to the benchmark's own parser (run), `--help` included (it lists the benchmarks): no prefix
    # character any argument can start with (NUL), so none is an option here. With "-", REMAINDER took none starting with
    # it and `inspector bench --json CKPT DATA` was refused as "inspector: unrecognized arguments: --json CKPT DATA".
    p = sub.add_parser("bench", help="benchmarks: " + ", ".join(BENCHES), description=__doc__, prefix_chars="\0", add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="BENCH ...", help="the benchmark and its arguments")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    argv = list(args.args)
    if DEFAULT_BENCH and argv and argv[0] not in BENCHES and argv[0] not in ("-h", "--help"):
        near = difflib.get_close_matches(argv[0], BENCHES, n=1)
        if near and not argv[0].startswith("-") and not Path(argv[0]).exists():  # `bench reprot` said "data 5: no such folder"
            raise InspectorError(f"bench {argv[0]}: no such benchmark; did you mean `inspector bench {near[0]}`?")
        argv.insert(0, DEFAULT_BENCH)  # `bench --json CKPT DATA` too: the default benchmark's options
    ns = _parser().parse_args(argv)
    return int(ns.func(ns) or 0)
