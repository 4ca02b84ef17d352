"""`inspector config validate FILE`: check a station config; each problem is printed with its YAML line."""

from __future__ import annotations

import argparse
import json
import sys

from inspector.commands.common import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="validate station configs, print the config schema", description=__doc__)
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", parser_class=type(p))
    csub.required = True
    v = csub.add_parser("validate", help="validate a station config (exit 0 when valid, 1 when not)")
    v.add_argument("file", help="station config YAML")
    v.add_argument("--json", action="store_true", help="print {valid, errors} as JSON")
    v.set_defaults(func=validate)
    s = csub.add_parser("schema", help="print the JSON schema of station configs (every key, with its description)")
    s.set_defaults(func=schema)


def validate(args: argparse.Namespace) -> int:
    from inspector.config import config_errors

    cfg, errors = config_errors(args.file)
    if args.json:
        print_json({"file": args.file, "valid": cfg is not None, "errors": errors})
    elif cfg is None:
        for e in errors:
            print(e, file=sys.stderr)
        print(f"{args.file}: {len(errors)} problem(s)", file=sys.stderr)
    else:
        print(f"{args.file}: valid (station {cfg.station.name}, source {cfg.source.type}, broker {cfg.mqtt.host}:{cfg.mqtt.port},"
              f" topics under {cfg.mqtt.prefix})")
    return 0 if cfg is not None else 1


def schema(args: argparse.Namespace) -> int:
    from inspector.config import StationConfig

    print(json.dumps(StationConfig.model_json_schema(), indent=2))
    return 0
