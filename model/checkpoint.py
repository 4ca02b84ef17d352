"""Checkpoint directory: `model.safetensors` (no pickle) + `manifest.json` (config, thresholds, hashes).

The manifest lists the sha256 of every other file and of itself (over its canonical JSON without the
`manifest_sha256` field), so a tampered or half-copied checkpoint is refused on load.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from model.errors import DIST, InspectorError, write_fix
from model.folders import folder_lock, remove_stale_tmps, replace_files
from model.hashing import sha256_file

if TYPE_CHECKING:  # torch (1.5 s to import) only where weights are read or written: `inspector threshold` edits a manifest
    from model.net import InspectorNet

FORMAT = "inspector-checkpoint/1"
WEIGHTS = "model.safetensors"
MANIFEST = "manifest.json"


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DIST)
    except PackageNotFoundError:
        return "0+unknown"


# distributions whose versions change a fit's numbers: image decoding and resizing, the backbone's code and kernels
FIT_PACKAGES = ("torch", "torchvision", "timm", "numpy", "scipy", "opencv-python-headless", "opencv-python", "pillow", "safetensors")
REPRODUCIBILITY = ("the same training images (their bytes, and their order by path), options and seed give the same weights "
                   "(model id) with these packages, CPU and torch_threads, wherever the folder is and whatever the files' times or "
                   "the locale. Another thread count or CPU adds floats in another order, so the weights differ in their last "
                   "digits: image scores and thresholds by about 1e-5 of their value, but a learnt branch (--synth) amplifies that "
                   "over its training steps, and its map and the pixel threshold (with --no-position-norm the image scores too) "
                   "differ by up to a few percent. The training.*seconds are timings.")


def fit_environment(backbone: str) -> dict[str, Any]:
    """What a fit's exact numbers depend on besides its data, options and seed (recorded in the manifest): the package
    versions, and the CPU and torch thread count, whose float kernels sum in their own order (1 and 2 threads fitted
    weights that differ in the last digits, so two model ids for one fit; after the learnt branch's 1,500 steps, pixel
    thresholds 0.877 and 0.895)."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    from model.backbones import weights_distribution

    packages = {}
    for name in (*FIT_PACKAGES, *filter(None, [weights_distribution(backbone)])):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:  # e.g. one of the two OpenCV wheels
            pass
    packages["torch"] = torch.__version__  # with its build (+cpu, +cu130), which the wheel's metadata leaves out
    capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: None)()
    return {"python": platform.python_version(), "platform": f"{platform.system()} {platform.machine()}",
            "cpu_capability": capability, "torch_threads": torch.get_num_threads(), "packages": packages,
            "reproducibility": REPRODUCIBILITY}


def _major(version: str) -> str:
    """Major release of a version string ("0.3.1" -> "0"); checkpoints are compatible within one."""
    return version.split("+")[0].split(".")[0].strip()


def _manifest_digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_manifest(ckpt: Path, manifest: dict[str, Any], new_files: dict[str, bytes] | None = None) -> dict[str, Any]:
    """Hash every file the manifest lists, seal the manifest with its own digest, and write it together with
    `new_files` (name -> bytes, hashed as given): all of them replace the old ones at once, or none does."""
    new_files = new_files or {}
    manifest = dict(manifest)
    manifest["files"] = {name: hashlib.sha256(new_files[name]).hexdigest() if name in new_files else sha256_file(ckpt / name)
                         for name in sorted(manifest.get("files") or [WEIGHTS])}
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    with _writing(ckpt):
        replace_files({**{ckpt / name: data for name, data in new_files.items()},
                       ckpt / MANIFEST: (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()})
    return manifest


@contextmanager
def _writing(ckpt: Path) -> Iterator[None]:
    """A checkpoint that cannot be written (read-only, disk full) ends in one line; the old manifest stays whole."""
    try:
        yield
    except (OSError, SafetensorError) as exc:
        fix = write_fix(exc) if isinstance(exc, OSError) else "free space or choose a writable folder"
        raise InspectorError(f"checkpoint {ckpt}: cannot be written ({getattr(exc, 'strerror', None) or exc}); {fix}") from None


def save_checkpoint(net: InspectorNet, ckpt: str | Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write weights and manifest into the directory `ckpt` (created if needed)."""
    from safetensors.torch import save as safetensors_bytes

    ckpt = Path(ckpt)
    if ckpt.exists() and not ckpt.is_dir():
        raise InspectorError(f"checkpoint {ckpt}: is a file; give a directory path for --out")
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    with _writing(ckpt):
        ckpt.mkdir(parents=True, exist_ok=True)
    manifest = {"environment": fit_environment(net.config.backbone), **manifest, "format": FORMAT, "package_version": package_version(),
                "net": net.config.to_dict(), "files": [WEIGHTS]}
    # not safetensors' save_file, which makes the file readable by its owner only: a daemon running as another
    # user (configs/inspector.service) could not load the checkpoint. Under the folder's lock, as `inspector
    # threshold` changes a manifest: its read-change-write could otherwise seal the old manifest over new weights.
    data = safetensors_bytes(state, metadata={"format": FORMAT})
    with folder_lock(ckpt):
        remove_stale_tmps(ckpt)  # a killed fit's half-written weights, otherwise left there for good
        return write_manifest(ckpt, manifest, {WEIGHTS: data})


def read_manifest(ckpt: str | Path) -> dict[str, Any]:
    """Read and verify a checkpoint's manifest and file hashes; raise InspectorError naming the problem."""
    return _read_verified(ckpt)[0]


EXPORT_SUFFIXES = (".onnx", ".engine", ".plan")


def _manifest_path(ckpt: Path) -> Path:
    if not ckpt.exists():
        raise InspectorError(f"checkpoint {ckpt}: no such directory; create one with `inspector fit`")
    path = ckpt / MANIFEST if ckpt.is_dir() else ckpt
    model = ckpt.with_suffix("") if ckpt.suffix == ".json" else ckpt  # an export's manifest is <model>.json
    if ckpt.is_file() and model.suffix in EXPORT_SUFFIXES:
        raise InspectorError(f"checkpoint {ckpt}: is an exported model or its manifest, not a checkpoint; give the checkpoint "
                             f"directory written by `inspector fit` (the export's manifest names it under source.checkpoint)")
    if not path.is_file() or path.name != MANIFEST:
        raise InspectorError(f"checkpoint {ckpt}: no {MANIFEST} inside; is this a directory written by `inspector fit`?")
    return path


def _read_raw(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InspectorError(f"checkpoint {path}: cannot be read ({exc.strerror or exc}); check its permissions") from None


def _parse_manifest(path: Path, text: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InspectorError(f"checkpoint {path}: not valid JSON ({exc.__class__.__name__}); re-create it with `inspector fit`") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise InspectorError(f"checkpoint {path}: format {found!r}, expected {FORMAT!r}; re-create it with this version's `inspector fit`")
    written, running = str(manifest.get("package_version", "")), package_version()
    if _major(written) != _major(running):
        raise InspectorError(f"checkpoint {path}: written by inspector {written or '(unknown)'}, this is {running}; "
                             f"re-create it with `inspector fit` or use inspector {_major(written) or '?'}.x")
    if manifest.get("manifest_sha256") != _manifest_digest(manifest):
        raise InspectorError(f"checkpoint {path}: edited by hand or corrupted (manifest hash mismatch); put back the {MANIFEST} "
                             "it was written with (thresholds change only through `inspector threshold`), or fit again")
    files = manifest.get("files")
    if not isinstance(files, dict) or WEIGHTS not in files:
        raise InspectorError(f"checkpoint {path}: lists no {WEIGHTS}; re-create it with `inspector fit`")
    return manifest


def _rewritten(path: Path, text: bytes) -> bool:
    """Whether the manifest changed from `text`, now or within a moment: a writer renames the weights in just before
    the manifest, and a reader between the two renames saw new weights under the old manifest."""
    if _read_raw(path) != text:
        return True
    time.sleep(0.2)
    return _read_raw(path) != text


def _read_verified(ckpt: str | Path, attempts: int = 3) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(manifest, {file name: its bytes}), each file read once and hashed as read, so what is loaded is what was
    verified: hashing the weights and then opening them again paired a `fit --force` landing in between with the
    old manifest. A checkpoint rewritten while it is read is read again."""
    path = _manifest_path(Path(ckpt))
    for _ in range(attempts):
        text = _read_raw(path)
        manifest, files = _parse_manifest(path, text), {}
        for name, digest in manifest["files"].items():
            f = path.parent / name
            try:
                data = f.read_bytes()
            except FileNotFoundError:
                data = None
            except OSError as exc:
                raise InspectorError(f"checkpoint {f}: cannot be read ({exc.strerror or exc}); check its permissions") from None
            if data is not None and hashlib.sha256(data).hexdigest() == digest:
                files[name] = data
                continue
            if _rewritten(path, text):
                break  # read the new one
            if data is None:
                raise InspectorError(f"checkpoint {path.parent}: {name} is missing; copy the whole directory")
            raise InspectorError(f"checkpoint {f}: sha256 does not match the manifest (tampered or truncated copy)")
        else:
            return manifest, files
    raise InspectorError(f"checkpoint {path.parent}: it changed while being read (being written by `inspector fit` or `threshold`?); "
                         "try again when that is done")


def load_checkpoint(ckpt: str | Path) -> tuple[InspectorNet, dict[str, Any]]:
    """Load and verify a checkpoint directory -> (network in eval mode, manifest)."""
    from safetensors.torch import load as load_bytes

    from model.net import InspectorNet, NetConfig

    manifest, files = _read_verified(ckpt)
    root = Path(ckpt) if Path(ckpt).is_dir() else Path(ckpt).parent
    known = {f.name for f in fields(NetConfig)}
    unknown = sorted(set(manifest.get("net") or {}) - known) if isinstance(manifest.get("net"), dict) else []
    if unknown:
        raise InspectorError(f"checkpoint {root}: written by a newer inspector (its model has settings this one does not know: "
                             f"{', '.join(unknown)}); upgrade inspector to load it")
    try:
        config = NetConfig.from_dict(manifest["net"])
        net = InspectorNet(config, load_weights=False, init_weights=False)  # loaded strictly below; fails too on a wrong type (an input size as text)
    except (KeyError, TypeError, ValueError) as exc:
        raise InspectorError(f"checkpoint {root}: manifest 'net' section is invalid ({exc}); re-create it with `inspector fit`") from None
    except InspectorError as exc:  # its backbone cannot be built here: open_clip missing, or one that does not know the model
        raise InspectorError(f"checkpoint {root}: {exc}" + ("; it was fitted with another open_clip: install the version it was fitted with"
                                                            if "unknown open_clip model" in str(exc) else "")) from None
    try:
        state = load_bytes(files[WEIGHTS])  # the bytes whose hash was checked
    except (SafetensorError, OSError) as exc:
        raise InspectorError(f"checkpoint {root / WEIGHTS}: cannot be read ({exc})") from None
    expected = net.state_dict()
    if "head.seg_norm" not in state and not config.seg_hidden:  # added to every model on 2026-11-26; unused without a learnt branch
        state["head.seg_norm"] = expected["head.seg_norm"]
    bad = sorted(set(state) ^ set(expected)) or [k for k in state if state[k].shape != expected[k].shape]
    if bad:
        raise InspectorError(f"checkpoint {root}: weights do not fit its manifest's model (first mismatch: {bad[0]}); the manifest and "
                             f"{WEIGHTS} come from different models, or from an inspector version this one cannot read: fit again")
    net.load_state_dict(state)
    return net.eval(), manifest
