"""`inspector serve --config FILE`: run the station daemon (sources and MQTT in, results out, nothing lost).

SIGHUP (`systemctl reload`) or an MQTT `{"command": "reload"}` loads the model and the file's `model` section again, without a stop."""

from __future__ import annotations

import argparse
import logging
import sys

from inspector.commands.common import path_of
from model.errors import InspectorError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the station daemon from a station config", description=__doc__)
    p.add_argument("--config", required=True, type=path_of("station config"), help="station config YAML (`inspector config example` gives examples)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="override daemon.log_level")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inspector.cli import Problems
    from inspector.config import config_errors, named
    from inspector.daemon import Daemon

    cfg, errors = config_errors(args.config)
    if cfg is None:  # each on its own line, as `config validate` prints them: five joined by "; " were one line of 600 characters
        if len(errors) == 1:
            raise InspectorError(named(args.config, errors[0]))
        raise Problems(f"config {args.config}: {len(errors)} problems:", errors)
    configure_logging((args.log_level or cfg.daemon.log_level).upper())
    from inspector.commands.config import threshold_note

    if costly := threshold_note(cfg):  # said in the log, where the line's people look when the station FAILs every part
        logging.getLogger("inspector.serve").warning(costly)
    return Daemon(cfg, config_path=args.config).run()


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    # WeasyPrint's step-by-step lines ("Step 4 - Creating layout") were half the station's log
    logging.getLogger("weasyprint.progress").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)  # WeasyPrint 68 sets its own to WARNING
