"""`inspector reload --config STATION.yaml [--pid PID]`: reload a running station's model and wait for the outcome.

`systemctl reload` with `ExecReload=kill -HUP` returned as soon as the signal was sent: exit 0 for a reload that failed,
or that never ran. The shipped unit's ExecReload runs this instead (systemd asks for a command that waits): it sends
SIGHUP and waits until the station's /health shows the outcome of a reload begun after it. Exit 0: the new model and
thresholds are in use; 1: the reload failed (the model in use goes on) or gave no outcome in time; 2: bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from inspector.commands.common import path_of, print_json
from model.errors import InspectorError


class ReloadFailed(InspectorError):
    """The station answered, and its reload failed or did not end in time: exit 1, not a mistake in the input."""

    exit_code = 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reload", help="reload a running station's model and wait for the outcome", description=__doc__)
    p.add_argument("--config", required=True, type=path_of("station config"), help="the station's config YAML (its http section says where /health is)")
    p.add_argument("--pid", type=int, help="the station's process (systemd's $MAINPID); default: the one its /health names")
    p.add_argument("--timeout", type=float, default=80.0, metavar="S",
                   help="seconds to wait for the outcome (default 80: under systemd's 90 s for ExecReload)")
    p.add_argument("--json", action="store_true", help="print /health's model section after the reload as JSON")
    p.set_defaults(func=run)


def health_url(host: str, port: int) -> str:
    """Where a station listening on host:port answers /health from this machine (a wildcard address on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/health"


def _health(url: str, config: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - the station's own address, from its config
            return json.load(r)
    except urllib.error.HTTPError as exc:  # /health answers 503 while failing, with the same body
        try:
            return json.load(exc)
        except ValueError:
            raise InspectorError(f"station {config}: {url} answered HTTP {exc.code}, not the station's health; check http.port") from None
    except (OSError, ValueError) as exc:
        raise InspectorError(f"station {config}: {url} does not answer ({getattr(exc, 'reason', exc)}); is the station running, "
                             "and is this its config?") from None


def _signal(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise InspectorError(f"--pid {pid}: no such process; is the station running?") from None
    except PermissionError:
        raise InspectorError(f"--pid {pid}: not allowed to signal it; run as the station's user or root") from None


def run(args: argparse.Namespace) -> int:
    from inspector.config import load_config
    from inspector.result import utc_now

    cfg = load_config(args.config)
    if args.timeout <= 0:
        raise InspectorError(f"--timeout {args.timeout:g}: give the seconds to wait, e.g. 80")
    if not cfg.http.enabled or not cfg.http.port:  # signalled still, as `kill -HUP` did: a unit's reload must not stop working
        if args.pid is None:
            raise InspectorError(f"station {args.config}: its /health is off (http.enabled false or http.port 0), so its process "
                                 "is not known; give --pid")
        _signal(args.pid)
        print(f"station {cfg.station.name}: asked to reload; its /health is off (http), so the outcome is only in its log",
              file=sys.stderr)
        if args.json:  # a script reading stdout got nothing to parse
            print_json({"station": cfg.station.name, "pid": args.pid, "signalled": True, "outcome": None})
        return 0
    url = health_url(cfg.http.host, cfg.http.port)
    before = _health(url, args.config)
    if before.get("station") != cfg.station.name:
        raise InspectorError(f"station {args.config}: {url} is station {before.get('station')!r}, not {cfg.station.name!r}; "
                             "give that station's config")
    pid = args.pid if args.pid is not None else before.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        raise InspectorError(f"station {args.config}: its /health names no process; give --pid")
    begun, asked = (before.get("model") or {}).get("reloads"), utc_now()
    _signal(pid)
    deadline = time.monotonic() + args.timeout
    while True:
        model = _health(url, args.config).get("model") or {}
        outcome = model.get("last_reload") or {}
        # one begun before the signal read the files as they were then; counted, not timed (a station from before reloads
        # were counted: by the time), so a clock stepped back meanwhile does not hide the outcome
        if isinstance(begun, int) and not isinstance(begun, bool):
            if isinstance(outcome.get("number"), int) and outcome["number"] > begun:
                break
        elif str(outcome.get("started_at", "")) >= asked:
            break
        if time.monotonic() > deadline:
            raise ReloadFailed(f"station {cfg.station.name}: no reload outcome within {args.timeout:g} s; see /health's "
                               "model.last_reload and the log")
        time.sleep(0.2)
    if args.json:
        print_json(model)
    if not outcome.get("ok"):
        raise ReloadFailed(f"station {cfg.station.name}: the reload failed, and parts go on with model {model.get('id')}: "
                           f"{outcome.get('error')}")
    if not args.json:
        print(f"station {cfg.station.name}: reloaded model {outcome.get('model')} ({outcome.get('runtime')}, {outcome.get('path')}), "
              f"image threshold {outcome.get('image_threshold'):g}, pixel threshold {outcome.get('pixel_threshold'):g}")
        for key in ("threshold_override", "restart_needed_for"):
            if outcome.get(key):
                said = outcome[key] if isinstance(outcome[key], str) else ", ".join(map(str, outcome[key]))
                print(f"  note: {key.replace('_', ' ')}: {said}", file=sys.stderr)
    return 0
