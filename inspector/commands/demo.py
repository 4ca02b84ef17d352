"""`inspector demo [--out DIR] [--quick] [--no-mqtt]`: the whole station in a few minutes, offline.

  1. a demo product: ceramic tiles cut from a CC0 texture inside scikit-image, defects made by model/synth
  2. `inspector fit` on the good parts (calibrated on held-out good and defective ones), `inspector export` to ONNX
  3. the daemon replays a generated video as its camera; a stand-in PLC triggers each part over MQTT through
     a private mosquitto (when installed; otherwise the video source runs continuously, without MQTT)
  4. results in the SQLite store, a live summary line, a shift report and a FAIL's inspection report (HTML + PDF)
  5. a table: image AUROC on the held-out parts, median latency per stage, report render times

Everything goes under --out (a folder an earlier demo wrote is emptied first; any other non-empty folder is refused).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from inspector.commands.common import path_of, seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a whole demo station offline: fit, export, serve over MQTT, store, reports",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo-output", type=path_of("folder"), help="folder for everything the demo writes (default ./demo-output)")
    p.add_argument("--quick", action="store_true", help="reduced mode: tiny images and few parts (well under a minute; used by the tests)")
    p.add_argument("--no-mqtt", dest="mqtt", action="store_false", help="do not start mosquitto; the daemon's video source runs by itself")
    p.add_argument("--seed", type=seed, default=0, help="seed for the parts and defects (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from inspector.demo.run import MARKER, DemoOptions, run_demo

    try:
        run_demo(DemoOptions(out=Path(args.out), quick=args.quick, mqtt=args.mqtt, seed=args.seed))
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP: its broker and station were stopped on the way out
        started = (Path(args.out) / MARKER).is_file()
        print(f"interrupted: {args.out} holds a partial demo (its broker and station stopped); the next"
              f" `inspector demo --out {args.out}` empties it" if started else "interrupted", file=sys.stderr)
        return 130
    return 0
