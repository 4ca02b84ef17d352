"""`inspector threshold CKPT|EXPORT`: show or change a checkpoint's or an export's thresholds without refitting.

A running `inspector serve` keeps the thresholds it loaded: reload it (SIGHUP, `systemctl reload`) or restart it
to use new ones (its /health says when the files changed). `--config STATION.yaml` first judges that station's
verification images at the new thresholds and writes nothing when one is misjudged: the station would refuse the
reload, and refuse to start at its next restart."""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from inspector.commands.common import add_policy_args, path_of, policy_from, print_json
from model.errors import InspectorError, denied

if TYPE_CHECKING:
    from model.calibration import Policy


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("threshold", help="show or change a checkpoint's or an export's thresholds", description=__doc__)
    p.add_argument("checkpoint", metavar="MODEL", type=path_of("model"), help="checkpoint directory, or an exported model file (its .json manifest beside it)")
    p.add_argument("--set", type=float, dest="value", help="set the image threshold to this score")
    p.add_argument("--pixel", type=float, help="set the pixel (region) threshold")
    p.add_argument("--config", action="append", default=[], metavar="STATION.yaml", type=path_of("station config"),
                   help="a station config serving this model: its verification images must be judged right at the new "
                        "thresholds, or nothing is written (repeat for several stations)")
    p.add_argument("--dry-run", action="store_true", help="show what the change would do; write nothing")
    p.add_argument("--json", action="store_true", help="print the thresholds as JSON")
    add_policy_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from model.folders import folder_lock

    ckpt = Path(args.checkpoint)
    try:
        exists = ckpt.exists()
        export_folder = exists and ckpt.is_dir() and not (ckpt / "manifest.json").exists()
    except PermissionError as exc:
        raise InspectorError(denied(exc, f"checkpoint {ckpt}")) from None
    if not exists:  # before the lock, which would only say the folder cannot be opened
        raise InspectorError(f"checkpoint {ckpt}: no such file or directory; give a checkpoint from `inspector fit` or an exported model")
    for flag, value in (("--set", args.value), ("--pixel", args.pixel)):
        if value is not None and not np.isfinite(value):
            raise InspectorError(f"{flag} {value}: give a finite score, e.g. the one `inspector threshold {ckpt}` shows")
    if export_folder or ckpt.is_file():  # a folder holding one export, or its manifest, as inspect and eval take them; an image
        from inspector.engines import locate_model

        ckpt = locate_model(ckpt)[0]
    # read, change and write under the folder's lock: two changes at once each kept the manifest they had read, and one
    # was lost; only showing them takes none (it would need to open a folder a reader may only pass through)
    policy = policy_from(args)
    changes = args.value is not None or args.pixel is not None or policy is not None
    if (args.config or args.dry_run) and not changes:
        raise InspectorError(f"{'--config' if args.config else '--dry-run'} applies to a change: give --set, --pixel, --escape or --far")
    lock = folder_lock if changes and not args.dry_run else lambda _folder: nullcontext()
    if ckpt.is_file() and ckpt.name != "manifest.json":
        with lock(ckpt.parent):
            return _run_export(args, ckpt, policy)
    with lock(ckpt if ckpt.is_dir() else ckpt.parent):
        return _run_checkpoint(args, ckpt, policy)


def _run_checkpoint(args: argparse.Namespace, ckpt: Path, policy: Policy | None) -> int:
    from model.checkpoint import read_manifest, write_manifest

    manifest = read_manifest(ckpt)
    ckpt = ckpt if ckpt.is_dir() else ckpt.parent  # also given as .../manifest.json
    good, defect = _calibration_scores(manifest, f"checkpoint {ckpt}", "re-create it with `inspector fit`")
    old = dict(manifest["thresholds"])
    new, calibration, info = _recalibrated(old, manifest.get("calibration", {}), good, defect, args, policy)
    changed = new != old
    info["stations"] = _check_stations(args.config, ckpt, new, old) if changed else []
    if calibration is not None and not args.dry_run:
        manifest["thresholds"], manifest["calibration"] = new, calibration
        manifest["files"] = list(manifest["files"])
        write_manifest(ckpt, manifest)
    written = calibration is not None and not args.dry_run
    info = {"checkpoint": str(ckpt), "thresholds": new, "previous": old if changed else None, "written": written, **info}
    if args.json:
        print_json(info)
    else:
        _print(info, new, changed, good, defect, str(ckpt), calibration is not None, args.dry_run)
        if changed and written:
            print("  exports made before keep the thresholds they were exported with: "
                  "set them there too (`inspector threshold EXPORT --set ...`) or export again")
    return 0


def _recalibrated(old: dict, calibration: dict, good: np.ndarray, defect: np.ndarray, args: argparse.Namespace,
                  policy: Policy | None) -> tuple[dict, dict | None, dict]:
    """The thresholds with --set, --pixel or a policy (on the calibration scores `good`, `defect`) applied -> (them,
    the calibration section to write, None when nothing is to be written, and what they do on the scores)."""
    from model.calibration import Policy, threshold_for, unresolved_note

    if policy is not None and args.value is not None:
        raise InspectorError("give either --set or --escape/--far, not both")
    new = _given(old, args)
    policy_before = calibration.get("policy")
    calibration = _by_hand(calibration, old, new)
    if policy is not None:  # never with --set (refused above)
        if policy.kind == "escape" and not defect.size:  # "needs defect images (test/<type> folders)": threshold takes no folder
            raise InspectorError(f"--escape {policy.target}: this model was calibrated on good images only, so no defect scores "
                                 "are stored to set an escape rate on; use --far, or refit on data with test/<type> folders")
        new["image"] = threshold_for(policy, good, defect)
        calibration = {**calibration, "policy": {"kind": policy.kind, "target": policy.target}}
    policy_now = calibration.get("policy")
    note = unresolved_note(Policy(**policy_now), good.size, defect.size) if policy_now else None
    known = isinstance(new.get("image"), (int, float))  # an export's broken thresholds: refused by the caller
    far = float((~(good < new["image"])).mean()) if good.size and known else None
    escape = float((defect < new["image"]).mean()) if defect.size and known else None
    info = {"far_on_calibration": far, "escape_on_calibration": escape, "policy": policy_now, "note": note}
    if new == old and policy_now == policy_before:  # a new policy is kept even where it lands on the same threshold
        return new, None, info
    return new, {**calibration, "threshold": new["image"], "far": far, "escape": escape, "note": note}, info


def _print(info: dict, new: dict, changed: bool, good: np.ndarray, defect: np.ndarray, model: str, rewrites: bool,
           dry_run: bool = False) -> None:
    """`rewrites`: the manifest is rewritten (or, with --dry-run, would be), if not for a threshold then for the policy
    it now answers to."""
    from model.calibration import trade_off_note

    print(_headline(new, changed, info["policy"] if rewrites and not changed else None, dry_run))
    if info["far_on_calibration"] is not None:
        print(f"  on {good.size} good calibration images: false alarms {info['far_on_calibration']:.1%}")
    if info["escape_on_calibration"] is not None:
        print(f"  on {defect.size} defect calibration images: escapes {info['escape_on_calibration']:.1%}")
    for note in (info["note"], info.get("rates_from")):
        if note:
            print(f"  note: {note}")
    trade = trade_off_note(good, defect, new["image"], model) if isinstance(new.get("image"), (int, float)) else None
    if trade:
        print(f"  note: {trade}")
    for station in info["stations"]:
        print(f"  station {station['config']}: {station['checked']}")
    if changed and not info["stations"]:
        print("  note: a station serving this model judges its verification images at each reload and start, and refuses a "
              "threshold that misjudges one (the next restart fails too): give --config STATION.yaml to check them first")


def _calibration_scores(manifest: dict, where: str, fix: str) -> tuple[np.ndarray, np.ndarray]:
    """The good and defect calibration scores, after checking the manifest's calibration sections have the shape
    fit writes: a resealed manifest with a malformed one was a traceback, and is one line naming the field."""
    from model.calibration import Policy

    def bad(field: str, want: str) -> InspectorError:
        return InspectorError(f"{where}: manifest field {field} is not {want}; {fix}")

    calibration, scores = manifest.get("calibration", {}), manifest.get("calibration_scores") or {}
    if not isinstance(calibration, dict):
        raise bad("calibration", "an object")
    policy = calibration.get("policy")
    if policy is not None:
        try:
            Policy(**policy)  # its own checks: the kind, and a rate in [0, 1)
        except (TypeError, InspectorError):  # not an object, other fields, or a target that is no number
            raise bad("calibration.policy", 'null or {"kind": "escape" or "far", "target": a rate in [0, 1)}') from None
    if not isinstance(scores, dict):
        raise bad("calibration_scores", "an object")
    found = []
    for kind in ("good", "defect"):
        values = scores.get(kind, [])
        if not (isinstance(values, list) and all(isinstance(v, (int, float)) and np.isfinite(v) for v in values)):
            raise bad(f"calibration_scores.{kind}", "a list of finite numbers")
        found.append(np.asarray(values, dtype=np.float64))
    return found[0], found[1]


def _run_export(args: argparse.Namespace, model: Path, policy: Policy | None) -> int:
    """An export's thresholds live in its manifest beside it: --set and --pixel change them there, and so does a
    policy, on the calibration scores the manifest carries (its checkpoint's, copied at export: those of the model
    the export was made from, even where that checkpoint was refitted since)."""
    from model.folders import output_lock

    # export's lock on its folder: a threshold set while `export --verify` ran lost the verification's outcome, written
    # between this command's read and its write (the export then stayed refused as awaiting it)
    with output_lock(model.parent, "export", busy=f"export {model}: `inspector export` is writing its folder now; run this "
                                                   "again when it has finished"):
        return _set_on_export(args, model, policy)


def _set_on_export(args: argparse.Namespace, model: Path, policy: Policy | None) -> int:
    from exporters.manifest import export_source, read_sidecar, write_sidecar

    side = read_sidecar(model, required=True)
    old = dict(side["thresholds"]) if isinstance(side.get("thresholds"), dict) else {}  # a broken one is what --set mends
    good, defect = _calibration_scores(side, f"export {model}", "export it again with `inspector export`")
    if policy is not None and not good.size and not defect.size:  # exported before the manifest carried them
        flag = f"--{policy.kind} {policy.target}"
        raise InspectorError(f"{flag} on export {model}: its manifest carries no calibration scores (exported before they were "
                             f"copied into it); export it again, or run `inspector threshold {export_source(model).get('checkpoint') or 'CHECKPOINT'} "
                             f"{flag}`, then --set that threshold here")
    new, calibration, info = _recalibrated(old, side.get("calibration") or {}, good, defect, args, policy)
    if side.get("kind") != "onnx" and (good.size or defect.size):  # float32 scores as its checkpoint does; reduced precision not
        # an INT8 export let 75 % of defects through at a threshold said to let 25 % through, on its checkpoint's scores
        info["rates_from"] = (f"these rates are its checkpoint's scores, copied at export; this {side.get('kind')} export scores "
                              f"otherwise: check it with `inspector eval {model} DATA`")
    if not all(isinstance(new.get(k), (int, float)) for k in ("image", "pixel")):
        raise InspectorError(f"export {model}: its thresholds are missing or not numbers; give both, "
                             f"`inspector threshold {model} --set SCORE --pixel VALUE`")
    changed = new != old
    info["stations"] = _check_stations(args.config, model, new, old) if changed else []
    if calibration is not None and not args.dry_run:
        write_sidecar(model, {**side, "thresholds": new, "calibration": calibration})
    written = calibration is not None and not args.dry_run
    # what the checkpoint's report says, from the calibration scores the export carries
    shown = {"export": str(model), "thresholds": new, "previous": old if changed else None, "written": written, **info}
    if args.json:
        print_json(shown)
    else:
        _print(info, new, changed, good, defect, str(model), calibration is not None, args.dry_run)
    return 0


def _by_hand(calibration: dict, old: dict, new: dict) -> dict:
    """A threshold set by hand answers to no policy, and was chosen on no images (eval then says neither)."""
    calibration = dict(calibration)
    if new["image"] != old.get("image"):
        calibration["policy"] = None
    if new.get("pixel") != old.get("pixel"):
        calibration["pixel_threshold_source"] = "set by hand"
    return calibration


def _given(old: dict, args: argparse.Namespace) -> dict:
    """The thresholds with those given by hand (--set, --pixel) in place."""
    new = dict(old)
    if args.value is not None:
        new["image"] = args.value
    if args.pixel is not None:
        new["pixel"] = args.pixel
    return new


def _headline(new: dict, changed: bool, policy: dict | None = None, dry_run: bool = False) -> str:
    """`policy`: the one the unchanged threshold now answers to (--escape 0.005 landed where 0.01 had: "unchanged" alone
    hid that the manifest was rewritten)."""
    if dry_run:  # the policy too: "unchanged; nothing written" hid that the run would rewrite the manifest for it
        state = ("would change" if changed else "unchanged" + (f"; it would answer to {_flag(policy)}" if policy else "")) \
            + "; nothing written (--dry-run)"
    else:
        state = "changed" if changed else "unchanged" + (f"; it now answers to {_flag(policy)}" if policy else "")
    return f"image threshold {new['image']:.6f}, pixel threshold {new['pixel']:.6f} ({state})"


def _flag(policy: dict) -> str:
    """A policy as its option."""
    return f"--{policy['kind']} {policy['target']}"


def _check_stations(configs: list[str], model: Path, new: dict, old: dict) -> list[dict]:
    """Each station config (`--config`) whose model is `model`, its verification images judged at the thresholds `new`
    (a threshold of its own config overrides the model's, as serve applies it, and the change of `old` that does not
    reach it is said) -> [{config, checked}]; InspectorError,
    before anything is written, for a misjudged image or a config that serves another model."""
    from inspector.api import Inspector
    from inspector.config import load_config
    from inspector.daemon import decision_of
    from inspector.engines import locate_model
    from inspector.verification import verify

    checked = []
    for path in configs:
        cfg = load_config(path)
        try:
            served = locate_model(cfg.model.path)[0]
        except InspectorError as exc:  # "model X: no such file" named neither the config nor its field
            raise InspectorError(f"--config {path}: model.path: {exc}") from None
        if served.resolve() != model.resolve():
            raise InspectorError(f"--config {path}: its model.path {cfg.model.path} is not {model}, so this change does not "
                                 "reach that station; give the config of a station that serves this model")
        # each threshold changed that its config overrides: the pixel one's went unsaid (its regions kept the old line),
        # and so did the image one's where the station lists no verification images
        own = "".join(f"; its own model.{kind}_threshold {value:g} overrides the model's, so the new {kind} threshold does not "
                      f"reach its {reach}" for kind, value, reach in (("image", cfg.model.image_threshold, "verdicts"),
                                                                     ("pixel", cfg.model.pixel_threshold, "defect regions"))
                      if value is not None and new.get(kind) != old.get(kind))
        if not cfg.model.verify_good and not cfg.model.verify_defect:
            checked.append({"config": path, "checked": "lists no verification images (model.verify_good, model.verify_defect): "
                                                       f"nothing judged{own}"})
            continue
        device = "cpu" if cfg.model.device.startswith("tensorrt") else cfg.model.device  # engines are built by serve, for minutes
        on = ""
        try:
            inspector = Inspector.load(model, device, decision_of(cfg.model))
        except InspectorError:
            if device == "cpu":
                raise
            # a station's cuda checked from a desk without one: "--device cuda: ..." named an option nobody gave; the
            # station judges them again on its own device at the reload
            inspector, on = Inspector.load(model, "cpu", decision_of(cfg.model)), f" (on cpu: this machine cannot run its model.device {device})"
        try:
            trial = inspector.with_thresholds(None if cfg.model.image_threshold is not None else new["image"],
                                              None if cfg.model.pixel_threshold is not None else new["pixel"])
            try:
                n = verify(trial, cfg.model.verify_good, cfg.model.verify_defect)
            except InspectorError as exc:
                raise InspectorError(f"nothing written: at image threshold {trial.image_threshold:g} station {path}'s {exc}") from None
        finally:
            inspector.engine.close()
        checked.append({"config": path, "checked": f"its {n['good']} good and {n['defect']} defect verification images are "
                                                   f"judged right at image threshold {trial.image_threshold:g}{on}{own}"})
    return checked
