"""onnxruntime before 1.28 makes INT8 graphs it then refuses to run (Python 3.10's last is 1.23): an INT8 export there is
refused in one line before the trace, not a traceback from the quantiser minutes in."""

from __future__ import annotations

import pytest

from exporters import quantiser_runs
from tests.cli import cli

ort = pytest.importorskip("onnxruntime")


def test_versions_before_1_28_make_no_int8():
    assert not quantiser_runs("1.19.2") and not quantiser_runs("1.23.2") and not quantiser_runs("1.27.0")
    assert quantiser_runs("1.28.0") and quantiser_runs("1.32.1") and quantiser_runs("2.0.0.dev20261201")


def test_an_int8_export_on_an_older_onnxruntime_is_refused_before_the_trace(capsys, tiny_ckpt, tmp_path, monkeypatch):
    import exporters.onnx_export

    def never(*_a, **_k):
        raise AssertionError("traced before the refusal")

    monkeypatch.setattr(ort, "__version__", "1.23.2")
    monkeypatch.setattr(exporters.onnx_export, "export_onnx", never)
    code, _, err = cli(capsys, "export", tiny_ckpt, "--format", "onnx,onnx-int8", "--out", tmp_path / "e")
    assert code == 2 and err.strip() == ("error: --format onnx-int8: onnxruntime 1.23.2 makes INT8 graphs it cannot run; install "
                                         "onnxruntime 1.28 or later (pip install -U onnxruntime; Python 3.11 or later), or use onnx-fp16")
    assert not (tmp_path / "e").exists()


def test_bench_times_the_other_formats_and_lists_int8_as_skipped_on_an_older_onnxruntime(tiny_ckpt, tmp_path, monkeypatch):
    """The refusal came first, for "onnx", and stopped the whole benchmark."""
    import exporters.export
    from inspector.commands.bench_model import _export_all

    asked = []
    monkeypatch.setattr(ort, "__version__", "1.23.2")
    monkeypatch.setattr(exporters.export, "export", lambda ckpt, formats, *a, **k: asked.append(list(formats)) or [])
    written, skipped = _export_all(tiny_ckpt, tmp_path, None, lambda _: None)
    assert asked and "onnx-int8" not in asked[0] and asked[0][:2] == ["onnx", "onnx-fp16"]
    assert [(c.kind, c.skipped) for c in skipped] == [("onnx-int8", "not exported: onnxruntime 1.23.2 makes INT8 graphs it cannot run; "
                                                       "install onnxruntime 1.28 or later (pip install -U onnxruntime; Python 3.11 or later), "
                                                       "or use onnx-fp16")]


# -- the INT8 skip of tests/conftest.py on an older onnxruntime -------------------------------------------------------
class _Item:
    """What pytest_collection_modifyitems reads of a collected test."""

    def __init__(self, nodeid: str, marked: bool = False) -> None:
        self.nodeid, self.marked, self.added = nodeid, marked, []

    def get_closest_marker(self, name: str):
        return object() if self.marked and name == "int8" else None

    def add_marker(self, marker) -> None:
        self.added.append(marker)


def test_the_int8_skip_on_an_older_onnxruntime_hides_no_test_that_makes_no_int8_graph(monkeypatch):
    """On Python 3.10 (onnxruntime 1.23) the skip matched "int8" anywhere in a test's id: uint8 image and mask tests, the
    TensorRT INT8 build, and the INT8 refusal's own tests (whose file is named int8) were skipped there too."""
    import tests.conftest as conftest

    monkeypatch.setattr(conftest, "INT8_RUNS", False)
    marked = _Item("tests/exporters/test_export.py::test_int8_export_keeps_scores", marked=True)
    unrelated = [_Item("tests/model/test_metrics_edges.py::test_metrics_aupro_takes_uint8_masks_like_bool_ones"),
                 _Item("tests/inspector/test_result_record.py::test_result_overlay_refuses_a_non_uint8_or_wrongly_shaped_image"),
                 _Item("tests/exporters/test_int8_old_onnxruntime.py::test_an_int8_export_on_an_older_onnxruntime_is_refused_before_the_trace"),
                 _Item("tests/exporters/test_int8_old_onnxruntime.py::test_versions_before_1_28_make_no_int8")]
    conftest.pytest_collection_modifyitems(None, [marked, *unrelated])
    assert marked.added  # an INT8 graph onnxruntime makes: skipped there
    assert [item.nodeid for item in unrelated if item.added] == []
