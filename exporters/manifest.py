"""Self-describing exported models: the export manifest, kept in ONNX metadata and in a JSON sidecar.

Every exported file `X` has a sidecar `X.json` holding what a runtime needs without the checkpoint
(input size and layout, normalisation, backbone, thresholds, class names, versions, checksums). ONNX files
also carry the same manifest (less their own checksum and the checkpoint's path) in `metadata_props["inspector.manifest"]`, so a lone
.onnx still says what it is; a runtime refuses it without its sidecar, which holds the thresholds in use (the
embedded copy has those of its export). Thresholds stay outside the graph: change them in the sidecar (or the
checkpoint, then re-export) without touching the model. TensorRT engines also record the GPU and TensorRT
version they were built for; a runtime refuses any other.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from model.errors import InspectorError, write_fix
from model.folders import replace_files
from model.hashing import sha256_file

FORMAT = "inspector-export/1"
METADATA_KEY = "inspector.manifest"
# fields that identify the model: sidecar and embedded metadata must agree on them. `input` too: its crop, locate and
# turn repeat net's (the runtime reads net's), so an edit there changed nothing and must not pass as if it did; every
# export's manifest has had `input` (`_check_format` requires it), written alike to both copies
IDENTITY = ("kind", "input", "net", "source")


def sidecar_path(model: Path) -> Path:
    return model.with_name(model.name + ".json")


VERIFYING = {"passed": None, "pending": True}  # the sidecar's `verify` while `export --verify` runs

def build_manifest(kind: str, ckpt: Path, ckpt_manifest: dict[str, Any], normalisation: dict[str, Any] | None,
                   outputs: list[str], toolchain: dict[str, str], precision: dict[str, Any] | None = None,
                   verifying: bool = False) -> dict[str, Any]:
    """The manifest embedded in (and written next to) one exported model; `verifying`: marked as waiting for `--verify`
    (`check_verified` refuses it until the verification's outcome replaces the mark)."""
    net = ckpt_manifest["net"]
    h, w = net["input_size"]
    return {
        "format": FORMAT,
        "kind": kind,
        "input": {"name": "image", "shape": ["batch", 3, h, w], "dtype": "float32", "layout": "NCHW", "color": "RGB",
                  "range": [0.0, 1.0], "resize": "outside the graph (model.images.preprocess)",
                  # the part of each image to resize (x, y, width, height in its pixels), cropped before: null for all
                  # of it; with `locate` > 0 px it follows the part, found by matching net.locator's template (model.framing),
                  # and with `turn` > 0 degrees it turns with it and is cut upright
                  "crop": net.get("roi"), "locate": net.get("locate", 0), "turn": net.get("turn", 0.0),
                  "normalisation": {"where": "inside the graph", **(normalisation or {})}},
        "outputs": outputs,
        "net": net,
        "thresholds": ckpt_manifest["thresholds"],
        "training": ckpt_manifest.get("training") or {},
        # so that `eval` of the export, as of its checkpoint, says where its thresholds were calibrated
        "calibration": ckpt_manifest.get("calibration") or {},
        "calibration_scores": ckpt_manifest.get("calibration_scores") or {},
        # what `eval` of the export reads as it does of its checkpoint: the fit options (--new-parts refits with them)
        # and the type head's fit (the test images it was fitted on, flattering its accuracy; its cross-validated one)
        "options": ckpt_manifest.get("options") or {},
        **({"types": ckpt_manifest["types"]} if ckpt_manifest.get("types") else {}),
        **({"environment": ckpt_manifest["environment"]} if ckpt_manifest.get("environment") else {}),  # what it was fitted with
        "source": {"checkpoint": str(Path(ckpt).resolve()),  # absolute: `bench` finds it from any folder
                   "weights_sha256": ckpt_manifest["files"]["model.safetensors"],
                   "manifest_sha256": ckpt_manifest.get("manifest_sha256")},
        "package_version": ckpt_manifest.get("package_version"),
        "toolchain": toolchain,
        "precision": precision or {},
        **({"verify": VERIFYING} if verifying else {}),
    }


def write_sidecar(model: Path, manifest: dict[str, Any], data: bytes | None = None) -> dict[str, Any]:
    """Seal `manifest` to the model file's bytes (sha256, size) and write `<model>.json`; with `data`, the model
    file's new bytes, both are replaced at once (an interrupted `export --force` left a model its sidecar refused)."""
    digest, size = (hashlib.sha256(data).hexdigest(), len(data)) if data is not None else (sha256_file(model), model.stat().st_size)
    manifest = {**manifest, "file": model.name, "file_sha256": digest, "file_bytes": size}
    sidecar = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    try:
        replace_files({model: data, sidecar_path(model): sidecar} if data is not None else {sidecar_path(model): sidecar})
    except OSError as exc:  # the files before stay whole
        what = model if data is not None else sidecar_path(model)
        raise InspectorError(f"export {what}: cannot be written ({exc.strerror or exc}); {write_fix(exc)}") from None
    return manifest


def _check_format(manifest: Any, where: str) -> dict[str, Any]:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise InspectorError(f"{where}: format {found!r}, expected {FORMAT!r}; re-export with this version's `inspector export`")
    missing = [k for k in ("kind", "net", "thresholds", "source", "input") if k not in manifest]
    if missing:
        raise InspectorError(f"{where}: manifest lacks {missing[0]!r}; re-export with `inspector export`")
    return manifest


def read_sidecar(model: Path, required: bool, data: bytes | None = None) -> dict[str, Any] | None:
    """Read and check `<model>.json` against the model file's bytes (`data`, where the caller has read them: what it
    runs is then what was checked); None when absent and not required."""
    path = sidecar_path(model)
    if not path.is_file():
        if required:
            raise InspectorError(f"model {model}: its manifest {path.name} is missing (it holds the thresholds); copy it along "
                                 "or re-export with `inspector export`")
        return None
    try:
        manifest = _check_format(json.loads(path.read_bytes()), f"manifest {path}")
    except OSError as exc:
        raise InspectorError(f"manifest {path}: cannot be read ({exc.strerror or exc}); check its permissions") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InspectorError(f"manifest {path}: not valid JSON ({exc.__class__.__name__}); re-export with `inspector export`") from None
    if manifest.get("file_sha256") != (sha256_file(model) if data is None else hashlib.sha256(data).hexdigest()):
        raise InspectorError(f"model {model}: sha256 does not match {path.name} (model and manifest come from different exports, "
                             "or the file is truncated); copy both files from the same `inspector export`")
    return manifest


def read_export(model: Path, verifying: bool = False) -> tuple[bytes, dict[str, Any]]:
    """An exported model's bytes, read once, with its sidecar checked against them and for its verification
    (`check_verified`): an engine then runs the bytes that were checked (opened again by path, a re-export landing
    between the two ran under the sidecar, thresholds included, checked for the export before it). A pair rewritten
    while it is read (`export --force` renames the model in, then its sidecar) is read again: a reload or start then
    failed as "come from different exports"."""
    for _ in range(3):
        before = _stamp(model)
        try:
            data = model.read_bytes()
        except OSError as exc:
            raise InspectorError(f"model {model}: cannot be read ({exc.strerror or exc}); check its permissions") from None
        try:
            # required: the graph's own copy of the manifest has its export's thresholds, not those set since
            manifest = read_sidecar(model, required=True, data=data)
            break
        except InspectorError:
            if not _rewritten(model, before):
                raise
    else:
        raise InspectorError(f"model {model}: it changed while being read (being written by `inspector export` or `threshold`?); "
                             "try again when that is done")
    check_verified(manifest, model, verifying)
    return data, manifest


def _stamp(model: Path) -> tuple:
    """The model file's and its sidecar's identity (inode, time, size; None for one missing): a rename changes it."""
    def one(p: Path) -> tuple | None:
        try:
            st = p.stat()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    return one(model), one(sidecar_path(model))


def _rewritten(model: Path, before: tuple) -> bool:
    """Whether the model or its sidecar was replaced since `before`, now or within a moment (a writer between its two
    renames)."""
    import time

    if _stamp(model) != before:
        return True
    time.sleep(0.2)
    return _stamp(model) != before


def export_source(model: Path, required: bool = True) -> dict[str, Any]:
    """The checkpoint an export was made from, as its sidecar records it (`checkpoint`, `weights_sha256`); {} if unknown."""
    source = (read_sidecar(model, required) or {}).get("source") or {}
    named = source.get("checkpoint") if isinstance(source, dict) else None
    if isinstance(named, str) and named and not Path(named).is_absolute():
        source = {**source, "checkpoint": _relative_checkpoint(model, named, source.get("weights_sha256"))}
    return source


def _relative_checkpoint(model: Path, named: str, weights: Any) -> str:
    """An export made before 2026-12-03 recorded its checkpoint as given to `export`, relative to a folder it did not
    record: read from the current one only, `bench` said a checkpoint beside the export was "not on this machine".
    The first of the current folder and the export's own folders above it where `named` holds these weights; else
    `named` as it is (relative to the current folder, as before)."""
    for base in (Path(), *Path(model).resolve().parents):  # Path(): the current folder, read as the path was before
        try:
            files = json.loads((base / named / "manifest.json").read_bytes()).get("files")
        except (OSError, ValueError, AttributeError):  # not there, unreadable, or no checkpoint's manifest
            continue
        if isinstance(files, dict) and weights is not None and files.get("model.safetensors") == weights:
            return str((base / named).resolve())
    return named


def check_verified(manifest: dict[str, Any], model: Path, verifying: bool = False) -> None:
    """An export that failed `export --verify` stays on disk under its name (to be looked at); a station must not
    run it unawares: 3 of 24 verdicts differed from its checkpoint's, a blowhole among them PASSed."""
    verify = manifest.get("verify")
    if verify == VERIFYING and not verifying:  # a reload between the export's write and its verification ran it unverified
        raise InspectorError(f"model {model}: its verification has not finished (an `inspector export --verify` is running, or was "
                             "stopped); wait for it, or export again")
    if isinstance(verify, dict) and verify.get("passed") is False:
        why = "; ".join(map(str, verify.get("failures") or [])) or "see its manifest"
        raise InspectorError(f"model {model}: failed its verification at export ({why}); export again (e.g. --format onnx-fp16), "
                             f"or delete the \"verify\" entry from {sidecar_path(model).name} to run it regardless")


def from_metadata(props: dict[str, str], model: Path) -> dict[str, Any] | None:
    """The manifest embedded in ONNX metadata_props, or None."""
    text = props.get(METADATA_KEY)
    if text is None:
        return None
    try:
        return _check_format(json.loads(text), f"model {model} (metadata)")
    except json.JSONDecodeError:
        raise InspectorError(f"model {model}: its embedded manifest is not valid JSON; re-export with `inspector export`") from None


def _identity(value: Any, key: str) -> Any:
    """What must agree between sidecar and embedded copy: not the source checkpoint's path, which only the sidecar
    holds since 2026-12-07 (the same checkpoint exported from two folders gave two ONNX files)."""
    return {k: v for k, v in value.items() if k != "checkpoint"} if key == "source" and isinstance(value, dict) else value


def resolve(model: Path, sidecar: dict[str, Any], embedded: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest to run with: the sidecar (thresholds may be edited there), checked against the embedded copy."""
    for key in IDENTITY if embedded is not None else ():
        if _identity(sidecar.get(key), key) != _identity(embedded.get(key), key):
            raise InspectorError(f"model {model}: {sidecar_path(model).name} describes another model ({key!r} differs from the "
                                 "ONNX metadata); copy both files from the same `inspector export`")
    return sidecar


def check_input_shape(manifest: dict[str, Any], graph_shape: list, model: Path) -> None:
    """The graph's input [B, 3, H, W] must match the manifest's input size."""
    h, w = manifest["net"]["input_size"]
    if len(graph_shape) != 4 or list(graph_shape[1:]) != [3, h, w]:
        raise InspectorError(f"model {model}: graph input is {list(graph_shape)} but its manifest says [batch, 3, {h}, {w}]; "
                             "model and manifest do not belong together, re-export")


def tensorrt_target() -> dict[str, str]:
    """The GPU and TensorRT version here, which an engine must have been built for."""
    try:
        import tensorrt as trt
    except ImportError:
        raise InspectorError("TensorRT engines need the tensorrt package and an NVIDIA GPU: pip install 'inspector-edge[gpu,tensorrt]'") from None
    import torch

    if not torch.cuda.is_available():
        raise InspectorError("TensorRT engines need an NVIDIA GPU, and torch sees none (CUDA unavailable)")
    major, minor = torch.cuda.get_device_capability()
    return {"gpu": torch.cuda.get_device_name(), "compute_capability": f"{major}.{minor}", "tensorrt": trt.__version__}


def check_tensorrt_target(recorded: dict[str, str] | None, here: dict[str, str], model: Path) -> None:
    """Refuse an engine built for another GPU or TensorRT version (engines are not portable)."""
    if not recorded:
        raise InspectorError(f"engine {model}: its manifest records no GPU/TensorRT version; rebuild it with `inspector export`")
    for key, what in (("gpu", "GPU"), ("compute_capability", "compute capability"), ("tensorrt", "TensorRT version")):
        if recorded.get(key) != here.get(key):
            raise InspectorError(f"engine {model}: built for {what} {recorded.get(key)!r} but this machine has {here.get(key)!r}; "
                                 "rebuild it here with `inspector export CKPT --format tensorrt-fp16|tensorrt-int8`")
