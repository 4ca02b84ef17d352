"""`export(checkpoint, formats, out)`: one checkpoint -> self-describing model files (+ JSON sidecars).

The float32 graph is traced once and checked against torch; FP16, INT8 and TensorRT are derived from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from exporters import calibration
from exporters.manifest import build_manifest, write_sidecar
from exporters.quantize import DRIFT_TOLERANCE
from model.errors import InspectorError, RetryLater, os_exit_code, write_fix
from model.folders import dead_link, remove_stale_tmps, scratch_folder, writable_folder

FILES = {
    "onnx": "model.onnx",
    "onnx-fp16": "model-fp16.onnx",
    "onnx-int8": "model-int8.onnx",
    "tensorrt-fp16": "model-fp16.engine",
    "tensorrt-int8": "model-int8.engine",
}
FORMATS = tuple(FILES)
N_CALIB, N_HOLDOUT = 64, 16


class ExportStopped(InspectorError):
    """A format failed after others were written: they stay, and are named (with --json, as JSON too)."""

    def __init__(self, message: str, written: list[Exported], reason: str = "", exit_code: int = InspectorError.exit_code) -> None:
        super().__init__(message)
        self.written = written
        self.reason = reason or message  # why the format failed, without the list of what was written
        self.exit_code = exit_code  # 75 where it may pass by itself (a full disk), as the CLI says of other OSErrors


def _os_failure(fmt: str, exc: OSError) -> InspectorError:
    """A format that failed for want of disk (the model's folder, or the temporary one where the INT8 search and TensorRT
    keep their graphs), said in one line: it left the formats written before it unverified, marked as waiting for a
    verification that never came, and unnamed."""
    where = f"{exc.filename}: " if exc.filename else ""
    text = f"--format {fmt}: {where}{exc.strerror or exc}; {write_fix(exc)}"
    # the CLI's own errno -> exit code: a name too long said "give a shorter path" and exited 75, restarted on for good
    return InspectorError(text) if os_exit_code(exc) == InspectorError.exit_code else RetryLater(text)


@dataclass
class Exported:
    path: Path
    manifest: dict[str, Any]
    parity: float  # worst relative difference of the float32 ONNX graph (each format's source) vs torch on random inputs


def _normalisation(net) -> dict[str, Any]:
    info: dict[str, Any] = {"per_image_standardisation": bool(getattr(net.config, "normalize_input", False))}
    bb = net.backbone
    if hasattr(bb, "mean") and hasattr(bb, "std"):
        info["mean"] = [round(float(v), 8) for v in bb.mean.flatten()]
        info["std"] = [round(float(v), 8) for v in bb.std.flatten()]
    return info


def _left_as_it_was(target: Path) -> str:
    """The failed format's file from an export before (`--force`), said: beside the files just written it passed for one of
    them, though perhaps of another checkpoint."""
    from exporters.manifest import export_source

    if not target.exists():
        return ""
    try:
        source = export_source(target, required=False).get("checkpoint")
    except InspectorError:
        source = None
    return f"; {target} is still the earlier export's{f' (of {source})' if source else ''}: delete it, or export it again"


def _check_source(ckpt: Path) -> None:
    """An export folder or an image given as the checkpoint is named so (both were 'no manifest.json inside; is this a
    directory written by `inspector fit`?'), with the checkpoint an export records where it does."""
    from exporters.manifest import export_source
    from model.checkpoint import EXPORT_SUFFIXES, MANIFEST
    from model.images import IMAGE_SUFFIXES

    fix = "give the checkpoint directory written by `inspector fit`"
    if ckpt.is_file() and ckpt.suffix.lower() in IMAGE_SUFFIXES:
        raise InspectorError(f"checkpoint {ckpt}: is an image, not a model; {fix} (--verify DATA takes the images)")
    if not ckpt.is_dir() or (ckpt / MANIFEST).exists():
        return
    try:
        models = sorted(p for p in ckpt.iterdir() if p.suffix in EXPORT_SUFFIXES and p.is_file())
    except OSError:
        return  # the checkpoint loader says it cannot be read
    if not models:
        return
    sources = set()
    for model in models:
        try:
            sources.add(export_source(model, required=False).get("checkpoint"))
        except InspectorError:
            continue
    named = f" (it was exported from {next(iter(sources))})" if len(sources - {None}) == 1 and None not in sources else ""
    raise InspectorError(f"checkpoint {ckpt}: is a folder of exports ({', '.join(m.name for m in models)}), not a checkpoint; "
                         f"{fix}{named}")


def _check_target(ckpt: Path, out: Path, formats: list[str], force: bool) -> None:
    from model.checkpoint import MANIFEST

    bad = [f for f in formats if f not in FILES]
    if bad or not formats:
        raise InspectorError(f"--format {bad[0] if bad else ''!r}: choose from {', '.join(FORMATS)}")
    if why := dead_link(out):  # resolve() raised RuntimeError of a loop
        raise InspectorError(f"--out {out}: {why}")
    # model files among a checkpoint's: `inspect` took that folder for the checkpoint and ran torch, not the export
    where = out.resolve()
    if ckpt.is_dir() and (where == ckpt.resolve() or ckpt.resolve() in where.parents):
        raise InspectorError(f"--out {out}: is inside the checkpoint {ckpt}; give the exports a folder of their own, "
                             f"e.g. --out {ckpt.parent / (ckpt.stem + '-exports')}")
    if (out / MANIFEST).is_file():
        raise InspectorError(f"--out {out}: is a checkpoint (it holds {MANIFEST}); give the exports a folder of their own")
    writable_folder(out, keep=False)
    taken = [FILES[f] for f in formats if (out / FILES[f]).exists()]
    if taken and not force:
        raise InspectorError(f"--out {out}: {taken[0]} is already there; pass --force to overwrite it")
    if any(f.startswith("tensorrt") for f in formats):
        from exporters.manifest import tensorrt_target

        tensorrt_target()  # fail before the slow part when there is no GPU or TensorRT here


def _note_other_models(out: Path, formats: list[str], weights: str, log: Callable[[str], None]) -> None:
    """Exports of another checkpoint that stay beside these (a folder is what `bench` and `inspect` take): said, not
    silently mixed."""
    from exporters.manifest import export_source

    for fmt, name in FILES.items():
        if fmt in formats or not (out / name).is_file():
            continue
        try:
            source = export_source(out / name, required=False)
        except InspectorError:
            continue  # unreadable: not this export's business
        if source.get("weights_sha256") not in (None, weights):
            log(f"note: --out {out} also holds {name}, exported from another checkpoint ({source.get('checkpoint')}); "
                "keep each model's exports in a folder of its own")


def export(ckpt: str | Path, formats: str | list[str], out: str | Path, calib: str | Path | None = None, force: bool = False,
           int8_tolerance: float = DRIFT_TOLERANCE, log: Callable[[str], None] = lambda _: None, verifying: bool = False) -> list[Exported]:
    """Export the checkpoint `ckpt` in each of `formats` into the directory `out`; `log` receives progress lines.

    `int8_tolerance`: mean score change on held-out good images (score units) the INT8 search accepts; `verifying`: the
    sidecars say a verification is to come, so that no station runs the files before it (manifest.check_verified)."""
    from exporters.onnx_export import check_parity, export_onnx, output_names, toolchain
    from model.checkpoint import MANIFEST, load_checkpoint

    formats = [formats] if isinstance(formats, str) else list(dict.fromkeys(formats))
    ckpt, out = Path(ckpt), Path(out)
    if ckpt.name == MANIFEST and ckpt.is_file():  # taken by load_checkpoint for its folder: recorded as the folder, and
        ckpt = ckpt.parent                       # --out inside that folder refused (both were the file's alone)
    _check_source(ckpt)
    _check_target(ckpt, out, formats, force)
    net, ckpt_manifest = load_checkpoint(ckpt)
    _note_other_models(out, formats, ckpt_manifest["files"]["model.safetensors"], log)
    h, w = net.config.input_size
    calib_images = holdout = where = None
    if "onnx-int8" in formats:
        from exporters.quantize import check_quantiser
        check_quantiser()
    if any(f.endswith("int8") for f in formats):  # before the slow trace: missing calibration data fails fast
        calib_paths, holdout_paths, where = calibration.image_sets(ckpt, ckpt_manifest, calib, N_CALIB, N_HOLDOUT)
        log(f"INT8 calibration on {len(calib_paths)} good images, checked on {len(holdout_paths)} from {where}")
        try:
            calib_images, holdout = (calibration.load(paths, (h, w), net.config.framing) for paths in (calib_paths, holdout_paths))
        except InspectorError as exc:  # an image that cannot hold the model's region, say, named without the option it came by
            raise exc if calib is None else InspectorError(f"--calib {calib}: {exc}") from None
    log(f"tracing {net.config.backbone} at {w}x{h} to ONNX (dynamic batch)")
    fp32 = export_onnx(net)
    parity = check_parity(net, fp32)
    log(f"  float32 graph matches torch: worst relative difference {parity:.1e} at batch 1 and 3")
    base = dict(ckpt=ckpt, ckpt_manifest=ckpt_manifest, normalisation=_normalisation(net), outputs=output_names(net), toolchain=toolchain(),
                verifying=verifying)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_tmps(out)  # a killed export's half-written model, otherwise left there for good
    done = []
    for fmt in formats:
        target = out / FILES[fmt]
        try:
            if fmt.startswith("tensorrt"):
                manifest = _tensorrt(fp32, fmt, target, (h, w), calib_images, base, log)
            else:
                manifest = _onnx(fp32, fmt, target, calib_images, (holdout, where), int8_tolerance, base, log)
        except (InspectorError, OSError) as exc:
            if not done:
                raise
            error = _os_failure(fmt, exc) if isinstance(exc, OSError) else exc
            raise ExportStopped(f"{error} (written before it: {', '.join(str(d.path) for d in done)}{_left_as_it_was(target)})", done,
                                str(error), error.exit_code) from None
        done.append(Exported(target, manifest, parity))
        log(f"  wrote {target} ({manifest['file_bytes'] / 1e6:.2f} MB)")
    return done


def _onnx(fp32: onnx.ModelProto, fmt: str, target: Path, calib_images, holdout: tuple, tolerance: float, base: dict, log) -> dict[str, Any]:
    from exporters.onnx_export import embed_manifest

    model, precision = fp32, {"compute": "float32"}
    if fmt == "onnx-fp16":
        from exporters.fp16 import convert_fp16

        model, precision = convert_fp16(fp32)
    elif fmt == "onnx-int8":
        from exporters.quantize import quantize_int8

        def show(t: dict) -> None:
            log(f"  INT8 try with float32 stages {t['float32_stages'] or 'none'}, {t['weight_bits']}-bit weights: mean score change on held-out good images "
                f"{t['holdout_mean_abs_score_change']:.4f}")

        try:
            result = quantize_int8(fp32, calib_images, holdout[0], tolerance, progress=show)
        except InspectorError as exc:
            if len(calib_images) >= N_CALIB or isinstance(exc, RetryLater):  # a full temp folder: more images mend nothing
                raise
            # activation ranges from a few images clip the next part's: the cause, where onnx-fp16 was the only fix said
            raise InspectorError(f"{exc}, or calibrate on more good images: its activation ranges came from {len(calib_images)} "
                                 f"(up to {N_CALIB} are used; give more with --calib DIR)") from None
        model, precision = result.model, {**result.describe(), "holdout": f"{len(holdout[0])} good images from {holdout[1]}"}
    else:
        model = onnx.ModelProto()
        model.CopyFrom(fp32)
    manifest = build_manifest(fmt, precision=precision, **base)
    embed_manifest(model, manifest)
    return write_sidecar(target, manifest, model.SerializeToString())


def _tensorrt(fp32: onnx.ModelProto, fmt: str, target: Path, size, calib_images, base: dict, log) -> dict[str, Any]:
    from exporters.tensorrt_build import build_engine

    precision = fmt.split("-")[1]
    weights = base["ckpt_manifest"]["files"]["model.safetensors"]
    # named by model and calibration images: TensorRT takes a cache it finds over calibrating, so one named by the
    # model alone kept the ranges of the images it was first made with through `export --force --calib OTHER`
    images = hashlib.sha256(np.ascontiguousarray(calib_images).tobytes()).hexdigest()[:12] if calib_images is not None else "none"
    cache = target.with_name(f"{target.stem}.{weights[:12]}.{images}.calib")
    with scratch_folder("inspector-trt-") as tmp:
        src = tmp / "model.onnx"
        onnx.save(fp32, src)
        data, info = build_engine(src, precision, size, calib_images, cache, log=log)
    manifest = build_manifest(fmt, precision=info, **base)
    manifest["tensorrt"] = info.pop("target")
    return write_sidecar(target, manifest, data)
