"""Shared fixtures: a tiny synthetic dataset and a checkpoint fitted on it once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Torch's thread pool fights itself on small shared CI boxes; one thread per process is faster there.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from tests.synthetic import write_mvtec

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return write_mvtec(tmp_path_factory.mktemp("tiny_mvtec"))


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_data, tmp_path_factory) -> Path:
    """A real efficientnet-lite0 model fitted at 64 px on the synthetic dataset (a few seconds)."""
    from model.checkpoint import save_checkpoint
    from model.data import load_dataset
    from model.fit import FitOptions, fit

    net, report = fit(load_dataset(tiny_data), FitOptions(input_size=64, coreset_ratio=0.25, batch_size=8))
    out = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    save_checkpoint(net, out, {"options": report.options, "training": report.training, "calibration": report.calibration,
                               "thresholds": report.thresholds, "calibration_scores": report.scores})
    return out


def shared_dataset(name: str) -> Path:
    """A dataset under ../shared/data, or skip the test when this clone has none."""
    path = Path(os.environ.get("INSPECTOR_SHARED_DATA", SHARED_DATA)) / name
    if not path.is_dir():
        pytest.skip(f"{path} is not present (real-data tests need ../shared/data)")
    return path
