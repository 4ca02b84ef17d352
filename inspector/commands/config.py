"""`inspector config validate FILE`: check a station config; each problem is printed with its YAML line.
`inspector config example [NAME]`: the example configs (station, broker, systemd unit), listed, printed or written."""

from __future__ import annotations

import argparse
import json
import sys

from inspector.commands.common import path_of, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="validate station configs, print the config schema or an example config", description=__doc__)
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", parser_class=type(p))
    csub.required = True
    v = csub.add_parser("validate", help="validate a station config (exit 0 when valid, 1 when not, 2 when the file cannot be read)")
    v.add_argument("file", type=path_of("station config"), help="station config YAML")
    v.add_argument("--here", action="store_true", help="also check that this machine can run it, as `serve` does at start: the "
                   "model loads on model.device and judges model.verify_good / verify_defect right, the source folder exists or the video "
                   "opens (a camera or stream is not opened), the password variable is set and the mqtt.tls files load, the store "
                   "folder is writable with store.min_free_mb free, the HTTP port is free")
    v.add_argument("--json", action="store_true", help="print {valid, errors} as JSON")
    v.set_defaults(func=validate)
    s = csub.add_parser("schema", help="print the JSON schema of station configs (every key, with its description)")
    s.set_defaults(func=schema)
    e = csub.add_parser("example", help="list the example station configs, broker config and systemd unit, or print or write one")
    e.add_argument("name", nargs="?", help="which example (without it, they are listed)")
    e.add_argument("--out", help="write it to this file (or into this folder under its own name); an existing file is not overwritten")
    e.set_defaults(func=show_example)


def validate(args: argparse.Namespace) -> int:
    from inspector.cli import one_line
    from inspector.config import config_errors

    cfg, errors = config_errors(args.file, unreadable=True)  # no file to validate: bad input, one line and exit 2
    notes = []
    if cfg is not None and args.here:
        errors, notes = machine_problems(cfg), machine_notes(cfg)
        cfg = None if errors else cfg
    if args.json:
        print_json({"file": args.file, "valid": cfg is not None, "errors": errors, **({"notes": notes} if args.here else {})})
    elif cfg is None:
        for e in errors:  # a path holding a newline split a problem over two lines
            print(one_line(e), file=sys.stderr)
        print(one_line(f"{args.file}: {len(errors)} problem(s)"), file=sys.stderr)
    else:
        n, judged = len(cfg.model.verify_good) + len(cfg.model.verify_defect), ""
        if n:
            judged = (f"; its {n} verification images are there, judged when serve has built its TensorRT engines"
                      if cfg.model.device.startswith("tensorrt") else f" and judges its {n} verification images right")
        here = f"; this machine can run it ({checked(cfg, judged)})" if args.here else ""
        print(one_line(f"{args.file}: valid (station {cfg.station.name}, source {cfg.source.type}, broker {cfg.mqtt.host}:"
                       f"{cfg.mqtt.port}, topics under {cfg.mqtt.prefix}){here}"))
    for note in notes if not args.json else ():
        print(f"note: {one_line(note)}", file=sys.stderr if cfg is None else sys.stdout)
    return 0 if cfg is not None else 1


def show_example(args: argparse.Namespace) -> int:
    """The examples listed, or one printed or written (`--out`), from wherever this copy of inspector has them."""
    from pathlib import Path

    from inspector.examples import EXAMPLES, example, examples_dir
    from model.errors import InspectorError

    if args.name is None:
        if args.out is not None:
            raise InspectorError("--out: give the example to write, e.g. `inspector config example camera --out station.yaml`")
        folder = examples_dir()
        for name, (file, what) in EXAMPLES.items():
            print(f"{name:8} {file:20} {what}")
        print(f"(in {folder}; `inspector config example NAME` prints one, `--out FILE` writes it)")
        return 0
    source = example(args.name)
    text = source.read_text(encoding="utf-8")
    if args.out is None:
        sys.stdout.write(text)
        return 0
    if not args.out.strip():  # `--out "$FILE"` with FILE unset
        raise InspectorError("--out '': give the file to write the example to, or leave --out out to print it")
    out = Path(args.out)
    out = out / source.name if out.is_dir() else out
    if out.exists():
        raise InspectorError(f"--out {out}: already exists and is not overwritten; give a new file name, or remove it first")
    if not out.parent.is_dir():
        raise InspectorError(f"--out {out}: its folder {out.parent} does not exist; create it first")
    try:
        with open(out, "x", encoding="utf-8") as f:  # "x": a file made meanwhile is not overwritten either
            f.write(text)
    except OSError as exc:
        raise InspectorError(f"--out {out}: cannot be written ({exc.strerror or exc}); give a file in a folder you can write to") from None
    station = source.suffix == ".yaml"
    print(f"wrote {out}" + (f"; set its paths, broker and source to this station's, then `inspector config validate --here {out}`"
                            if station else ""))
    return 0


def checked(cfg, judged: str) -> str:
    """What --here checked, truthfully for each source: a camera or stream is not opened (serve keeps retrying one that
    does not open, and a camera the running station holds must not be taken from it), so it is not called checked."""
    from inspector.sources import open_source

    source = {"folder": "source folder", "video": "source video"}.get(cfg.source.type)
    password = cfg.mqtt.username is not None and cfg.mqtt.password_env  # read by the broker client only with a user name
    stream_password = getattr(cfg.source, "password_env", None)
    parts = [p for p in (source, "source password variable" if stream_password else None, "MQTT password variable" if password else None, "mqtt.tls files" if cfg.mqtt.tls else None,
                         "store", "port" if cfg.http.enabled and cfg.http.port else None) if p]
    said = f"the model loads on {cfg.model.device}{judged}, {', '.join(parts[:-1])}{' and ' if len(parts) > 1 else ''}{parts[-1]} checked"
    if cfg.source.type in ("camera", "stream"):
        said += f"; source {open_source(cfg.source).name} not opened by --here"
    return said


def broker_hint(cfg) -> str:
    """How to start a broker for this config: the example mosquitto.conf needs its password file and certificates first (and
    logs to syslog), so on a fresh machine `mosquitto -c` with it exited 13 with nothing on screen."""
    production = ("for a line, `inspector config example broker` gives a config that needs a password file, the ACL "
                  "`inspector config example acl` gives, and certificates first")
    if cfg.mqtt.host in ("127.0.0.1", "localhost", "::1") and cfg.mqtt.tls is None:
        # mosquitto 2 with no config file listens on this host only and lets anyone in, which is what a try needs
        return f"start the broker (to try it: mosquitto -p {cfg.mqtt.port} on this host; {production})"
    return f"start the broker at {cfg.mqtt.host}:{cfg.mqtt.port} ({production})"


def machine_notes(cfg) -> list[str]:
    """What would not stop `serve` but a user should know before the line starts: "this machine can run it" was said
    with the broker down, and relative paths are read from the folder serve starts in, which systemd sets to /."""
    import os
    import socket

    notes = []
    try:
        socket.create_connection((cfg.mqtt.host, cfg.mqtt.port), timeout=3).close()
    except OSError as exc:
        notes.append(f"broker {cfg.mqtt.host}:{cfg.mqtt.port} does not answer now ({exc.strerror or exc}); serve would start "
                     f"degraded and keep trying: {broker_hint(cfg)} or fix mqtt.host/port")
    # every path the station reads or writes (a relative logo, TLS file or verification image passed --here, then stopped
    # the start under systemd)
    tls = cfg.mqtt.tls
    fields = {"model.path": [cfg.model.path], "model.verify_good": cfg.model.verify_good, "model.verify_defect": cfg.model.verify_defect,
              "source.path": [getattr(cfg.source, "path", None)], "store.data_dir": [cfg.store.data_dir],
              "mqtt.allowed_dirs": cfg.mqtt.allowed_dirs, "reports.logo": [cfg.reports.logo],
              **{f"mqtt.tls.{k}": [getattr(tls, k) if tls else None] for k in ("ca_file", "cert_file", "key_file")}}
    relative = [f for f, vs in fields.items() if any(isinstance(v, str) and v and "://" not in v and not os.path.isabs(v) for v in vs)]
    if relative:
        notes.append(f"{', '.join(relative)} {'is' if len(relative) == 1 else 'are'} relative: read from the folder serve starts in ({os.getcwd()} here); "
                     "under systemd give absolute paths")
    if costly := threshold_note(cfg):
        notes.append(costly)
    if camera := camera_note(cfg):
        notes.append(camera)
    if cfg.mqtt.allow_urls and not cfg.mqtt.url_hosts:
        notes.append("mqtt.allow_urls: whoever may publish triggers can have this station fetch from any host it reaches; "
                     "list the image servers in mqtt.url_hosts")
    return notes


def camera_note(cfg) -> str | None:
    """A camera whose device node is not there: serve starts and keeps retrying it, so it is no problem, but --here
    does not open a camera (the running station may hold it) and must not let "can run it" read as "the camera is there"."""
    import os
    import sys

    if cfg.source.type != "camera" or not sys.platform.startswith("linux"):
        return None
    device = cfg.source.device
    node = f"/dev/video{device}" if isinstance(device, int) else device if device.startswith("/dev/") else None
    if node is None or os.path.exists(node):
        return None
    return (f"source.device {device}: {node} does not exist on this machine; serve would start and keep trying to open it "
            "(/health says source reconnecting): connect the camera or fix source.device")


def threshold_note(cfg) -> str | None:
    """A threshold that fails most good parts (or passes most defects) on its own calibration images: `fit` said so
    once, and then "this machine can run it" let the line start scrapping good parts."""
    import numpy as np

    from exporters.manifest import read_sidecar
    from inspector.engines import locate_model
    from model.calibration import trade_off_note
    from model.checkpoint import read_manifest
    from model.errors import InspectorError

    try:
        path, kind = locate_model(cfg.model.path)
        manifest = read_manifest(path) if kind == "checkpoint" else read_sidecar(path, required=True) or {}
        threshold = float(cfg.model.image_threshold if cfg.model.image_threshold is not None else manifest["thresholds"]["image"])
        scores = manifest.get("calibration_scores") or {}
        note = trade_off_note(np.asarray(scores.get("good", []), float), np.asarray(scores.get("defect", []), float), threshold, str(path))
    except (InspectorError, KeyError, TypeError, ValueError):
        return None  # a model that does not load is a problem, said by machine_problems
    if note and cfg.model.image_threshold is not None:
        return f"model.image_threshold {cfg.model.image_threshold:g} (over the model's): {note.removeprefix('this threshold ')}; set by the config, so change it there"
    return f"model {path}: {note}" if note else None


def machine_problems(cfg) -> list[str]:
    """What would stop `inspector serve` from starting this config on this machine (one line each)."""
    import os
    import shutil
    import socket
    from pathlib import Path

    from inspector.api import Inspector
    from inspector.daemon import broker_client, check_verification_files, decision_of
    from inspector.engines import locate_model
    from inspector.sources import open_source
    from inspector.store import DB_NAME, Store, cannot_write, unwritable
    from inspector.verification import verify
    from model.errors import InspectorError, need

    def model() -> None:
        if cfg.model.device.startswith("tensorrt"):  # loading would build engines (minutes) into a cache owned by this user
            locate_model(cfg.model.path)
            if "TensorrtExecutionProvider" not in need("onnxruntime", "gpu", "model.device tensorrt").get_available_providers():
                raise InspectorError("model.device tensorrt: onnxruntime here has no TensorRT provider; install onnxruntime-gpu "
                                     "and TensorRT, or use cuda or cpu")
            check_verification_files(cfg.model)  # judged by serve
            return
        inspector = Inspector.load(cfg.model.path, cfg.model.device, decision_of(cfg.model))
        try:
            verify(inspector, cfg.model.verify_good, cfg.model.verify_defect)
        finally:
            inspector.engine.close()

    problems = []
    # the broker client as serve builds it before its store: the password variable, the mqtt.tls files (nothing connects)
    # a folder or video file that is not there, a video OpenCV cannot open (a camera or stream serve retries: not opened)
    for check in (model, lambda: open_source(cfg.source), lambda: broker_client(cfg)):
        try:
            check()
        except InspectorError as exc:
            problems.append(str(exc).replace("--device", "model.device"))
    for d in cfg.mqtt.allowed_dirs:  # else every path trigger would be answered "no such file"
        if not Path(d).is_dir() or not os.access(d, os.R_OK | os.X_OK):
            problems.append(f"mqtt.allowed_dirs {d}: {'no such folder' if not Path(d).exists() else 'not a folder this user can read'};"
                            " create it, fix its permissions or the path")
    folder = Path(cfg.store.data_dir).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        problems.append(f"store.data_dir {cfg.store.data_dir}: {existing} is not a folder this user can write to; choose another or fix its permissions")
    elif files := unwritable(folder):
        problems.append(f"store.data_dir: {cannot_write(folder, ', '.join(f.name for f in files))}")
    elif (folder / DB_NAME).exists():  # as serve opens it: a newer inspector's or a damaged store read "checked", and serve refused it
        try:
            Store(folder, readonly=True).close()
        except InspectorError as exc:
            problems.append(str(exc))
    if (free_mb := shutil.disk_usage(existing).free // 2**20) < cfg.store.min_free_mb:
        problems.append(f"store.data_dir {cfg.store.data_dir}: {free_mb} MB free, below store.min_free_mb ({cfg.store.min_free_mb} MB): "
                        "results would be stored without their images; free space, or store the data on another disk")
    if cfg.http.enabled and cfg.http.port:
        with socket.socket(socket.AF_INET6 if ":" in cfg.http.host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP server binds it
            try:
                s.bind((cfg.http.host, cfg.http.port))
            except OSError as exc:
                problems.append(f"http {cfg.http.host}:{cfg.http.port}: cannot listen ({exc.strerror}); is this station already running, "
                                "or does another program use the port?")
    return problems


def schema(args: argparse.Namespace) -> int:
    from inspector.config import StationConfig

    print(json.dumps(StationConfig.model_json_schema(), indent=2))
    return 0
