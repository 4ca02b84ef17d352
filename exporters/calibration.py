"""Good images for INT8: calibration images, and different held-out good images to check the result on.

Source: --calib DIR, else the training data recorded in the checkpoint. Held-out images come from its
test/good folder when there is one: training images are in the memory bank (their nearest normal patch
is almost themselves), so their scores react to rounding far more than a new part's would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from model.errors import InspectorError
from model.framing import Framing


def check_calib(calib: str | Path | None) -> None:
    """Refuse a --calib that is no folder before any export (it was said as `data X`, naming no option, after the float
    exports were written)."""
    if calib is not None and not Path(calib).is_dir():
        what = "is a file" if Path(calib).exists() else "no such folder"
        raise InspectorError(f"--calib {calib}: {what}; give a folder of good images for INT8 calibration, or leave --calib "
                             "out to use the checkpoint's training data")


def as_option(exc: InspectorError, root: str | Path, option: str) -> InspectorError:
    """The data loader's error about `root` ("data X: ..."), said as the option that gave X: "data X: no such folder"
    named no option for --verify or --calib."""
    text, said = str(exc), f"data {root}"
    return InspectorError(f"{option} {root}{text[len(said):]}" if text.startswith(said) else text)


def _root(ckpt: Path, ckpt_manifest: dict[str, Any], calib: str | Path | None) -> Path:
    if calib is not None:
        return Path(calib)
    recorded = (ckpt_manifest.get("training") or {}).get("root")
    candidates = [Path(recorded), ckpt / recorded, ckpt.parent / recorded] if recorded else []
    root = next((c for c in candidates if c.is_dir()), None)
    if root is None:
        where = f"its training data {recorded!r} is not on this machine" if recorded else "it records no training data"
        raise InspectorError(f"checkpoint {ckpt}: INT8 calibration needs good images and {where}; pass --calib DIR (good images)")
    return root


def _spread(paths: list[Path], n: int) -> list[Path]:
    return paths[:: max(1, len(paths) // n)][:n]


def image_sets(ckpt: Path, ckpt_manifest: dict[str, Any], calib: str | Path | None, n_calib: int, n_holdout: int
               ) -> tuple[list[Path], list[Path], str]:
    """(calibration images, held-out check images, where the check images come from)."""
    from model.data import load_dataset

    root = _root(ckpt, ckpt_manifest, calib)
    try:
        dataset = load_dataset(root)
    except InspectorError as exc:
        raise (as_option(exc, root, "--calib") if calib is not None else exc) from None
    train = [s.path for s in dataset.train]
    test_good = [s.path for s in dataset.test if not s.is_defect]
    if test_good:
        return _spread(train, n_calib), _spread(test_good, n_holdout), f"{root}/test/good"
    if len(train) < 2:
        raise InspectorError(f"calibration: {len(train)} good image(s) in {root}; give at least 2 (ideally 64+) with --calib")
    holdout = _spread(train, min(n_holdout, max(1, len(train) // 4)))
    rest = [p for p in train if p not in set(holdout)]
    few = f"; only {len(holdout)}: the INT8 check is rough, give 64+ good images with --calib" if len(holdout) < n_holdout else ""
    return _spread(rest, n_calib), holdout, f"{root} (held out from calibration{few})"


def load(paths: list[Path], size: tuple[int, int], framing: Framing | None = None) -> np.ndarray:
    """Preprocess images exactly as serving does -> float32 [N, 3, h, w]."""
    from model.extract import load_batches

    return np.concatenate([batch for _, batch, _, _ in load_batches(paths, size, batch_size=16, framing=framing)])
