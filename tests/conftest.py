"""Shared fixtures: a tiny synthetic dataset and a checkpoint fitted on it once per session."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

# Torch's thread pool fights itself on small shared CI boxes; one thread per process is faster there.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from tests.synthetic import write_mvtec

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _int8_runs() -> bool:
    """Whether the installed onnxruntime makes INT8 graphs (none on Python 3.10: its last onnxruntime is 1.23)."""
    from importlib.metadata import PackageNotFoundError, version

    from exporters import quantiser_runs

    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            return quantiser_runs(version(dist))
        except PackageNotFoundError:
            pass
    return True  # no onnxruntime: the ONNX tests skip on their own, saying so


INT8_RUNS = _int8_runs()


def pytest_collection_modifyitems(config, items):
    if not INT8_RUNS:
        skip = pytest.mark.skip(reason="this onnxruntime makes INT8 graphs it cannot run (onnxruntime 1.28 or later, Python 3.11+)")
        for item in items:
            if item.get_closest_marker("int8"):
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def trace_each_model_once():
    """Tracing a model to ONNX takes 20-30 s here, and the same module (weights, buffers, settings) gives the
    same graph: each distinct model is traced once per test run. `export` checks every graph against torch
    (`check_parity`), so a wrong cache entry would fail there, not pass."""
    import hashlib
    import io
    import pickle

    import torch

    try:
        import onnx

        from exporters import onnx_export
    except ImportError:  # no ONNX extra: nothing to cache (the export test modules need it to import at all)
        yield
        return

    class Fingerprint(pickle.Pickler):
        def persistent_id(self, obj):  # tensors by content: torch's own pickling embeds a random id
            if isinstance(obj, torch.Tensor):
                return str(obj.dtype), tuple(obj.shape), hashlib.sha256(obj.detach().cpu().flatten().numpy().tobytes()).hexdigest()
            return None

    real, graphs = onnx_export.export_onnx, {}

    def export_onnx(net):
        buf = io.BytesIO()
        try:
            Fingerprint(buf).dump(net.eval().cpu())
        except Exception:  # e.g. a module class defined inside a test does not pickle: trace it every time
            return real(net)
        key = hashlib.sha256(buf.getvalue()).hexdigest()
        if key not in graphs:
            graphs[key] = real(net).SerializeToString()
        model = onnx.ModelProto()
        model.ParseFromString(graphs[key])  # a private copy: callers edit the graph in place
        return model

    patch = pytest.MonkeyPatch()
    patch.setattr(onnx_export, "export_onnx", export_onnx)
    yield
    patch.undo()


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


@pytest.fixture
def public_dir():
    """A folder other users can reach (pytest's own are private to this user), for `tests.access`."""
    import shutil
    import stat
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="inspector-access-"))
    top.chmod(0o755)
    yield top
    for p in [top, *top.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(stat.S_IRWXU)
    shutil.rmtree(top)


@pytest.fixture(scope="session")
def pyproject() -> dict:
    """pyproject.toml, parsed."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium for the module's tests (skipped where it or websocket-client is not installed)."""
    pytest.importorskip("websocket", reason="browser tests need websocket-client (the dev extra)")
    from tests.reports.browser import Chromium, chromium_binary

    binary = chromium_binary()
    if not binary:
        pytest.skip("chromium is not installed (apt-get install chromium; see the Makefile's APT_PACKAGES)")
    b = Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def fail_file_fsyncs(monkeypatch) -> None:
    """os.fsync of a regular file raises EIO from now on (a dying disk); a folder's still syncs."""
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
