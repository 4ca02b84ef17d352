"""The Python API as a line PC's software embeds it: threads, closing, argument types and errors, the record's JSON.

A stand-in engine (no torch) keeps these fast; test_api.py runs the real model."""

from __future__ import annotations

import json
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from inspector import Inspector
from inspector.decision import DecisionConfig
from inspector.engines.base import HeadOutput, ModelMeta
from model.errors import InspectorError

SIZE = (32, 32)


class FakeEngine:
    """Scores every image 5.0 with a flat map of 0.0; notes calls that overlap and when it was closed."""

    def __init__(self, delay: float = 0.0) -> None:
        self.meta = ModelMeta(model_id="m", backbone="b", input_size=SIZE, image_threshold=1.0, pixel_threshold=1.0,
                              sha256="0" * 64, path="fake.onnx", runtime="fake")
        self.delay, self.active, self.overlapped, self.calls, self.closed = delay, 0, 0, 0, 0
        self.guard = threading.Lock()
        self.hold: threading.Event | None = None  # when set to an Event, the first call runs until it is set

    def infer(self, batch: np.ndarray) -> HeadOutput:
        with self.guard:
            self.active += 1
            self.overlapped += self.active > 1
            hold, self.hold = self.hold, None
        if hold is not None:
            hold.wait(60)
        time.sleep(self.delay)  # as a TensorRT context between setting its buffers and running
        with self.guard:
            self.active -= 1
            self.calls += 1
        n = len(batch)
        return HeadOutput(np.full(n, 5.0, np.float32), np.zeros((n, *SIZE), np.float32))

    def close(self) -> None:
        self.closed += 1


IMAGE = np.full((40, 48, 3), 120, np.uint8)


def test_threads_share_one_inspector_one_engine_call_at_a_time(monkeypatch):
    """A TensorRT engine's one execution context takes each call's shapes and buffer addresses: calls from two
    threads interleaved would read one part's outputs as another's."""
    import inspector.api as api
    from tests.inspector.conftest import wait_until

    engine = FakeEngine(delay=0.02)
    engine.hold = release = threading.Event()  # the first call holds the engine until released, the others waiting behind it
    insp = Inspector(engine)
    copy = insp.with_thresholds(image=2.0)  # a copy shares the engine, so the same lock
    preprocessed, real = [], api.preprocess
    monkeypatch.setattr(api, "preprocess", lambda *a, **k: (real(*a, **k), preprocessed.append(1))[0])
    results = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, (insp if i % 2 else copy).inspect(IMAGE))) for i in range(8)]
    threads[0].start()
    wait_until(lambda: engine.active, 30, "the first call in the engine")
    for t in threads[1:]:
        t.start()
    wait_until(lambda: len(preprocessed) == 8, 30, "the other 7 preprocessed, at the engine's lock")
    hold_s = 6.0
    time.sleep(hold_s)  # they wait for the engine meanwhile: a wait read as inference time would be this long at least
    release.set()
    for t in threads:
        t.join()
    assert engine.calls == 8 and engine.overlapped == 0
    # waiting for another's call (the first one's, held 6 s) is no part's inference time, nor its preprocessing (20 ms
    # engine calls here: the bound is half the hold, not a timing, for CI's loaded cores)
    assert max(results[i].timings_ms["infer"] + results[i].timings_ms["preprocess"] for i in range(1, 8)) < hold_s * 1000 / 2


def test_close_and_with_block_free_the_model_once_and_refuse_later_inspections():
    engine = FakeEngine()
    with Inspector(engine) as insp:
        copy = insp.with_thresholds(image=2.0)
        assert insp.inspect(IMAGE).verdict == "FAIL"
    assert engine.closed == 1
    insp.close()  # again: nothing more
    assert engine.closed == 1
    for which in (insp, copy):  # was TypeError: 'NoneType' object is not callable, from the freed network
        with pytest.raises(InspectorError, match="fake.onnx: closed; load the model again"):
            which.inspect(IMAGE)


def test_close_waits_for_an_inspection_in_progress():
    engine = FakeEngine(delay=0.2)
    insp = Inspector(engine)
    worker = threading.Thread(target=insp.inspect, args=(IMAGE,))
    worker.start()
    while not engine.active:
        time.sleep(0.005)
    insp.close()
    assert engine.calls == 1 and engine.closed == 1  # the call ended before the engine was closed
    worker.join()


def test_close_takes_an_infinite_timeout_and_names_one_that_is_no_number():
    """close(timeout=math.inf), to wait for good, raised OverflowError ('timestamp out of range for platform time_t');
    nan ValueError, "5" TypeError."""
    for bad in (float("nan"), "5"):
        with pytest.raises(InspectorError, match=r"close: timeout .*; give the seconds to wait, or None"):
            Inspector(FakeEngine()).close(timeout=bad)
    engine = FakeEngine()
    assert Inspector(engine).close(timeout=float("inf")) and engine.closed == 1


@pytest.mark.parametrize("decision", [DecisionConfig(image_threshold=float("nan")), DecisionConfig(pixel_threshold=float("inf"))])
def test_thresholds_given_in_a_decision_config_are_checked(decision):
    """Inspector.load(..., decision=DecisionConfig(image_threshold=nan)) failed every part with records of invalid JSON."""
    with pytest.raises(InspectorError, match="threshold (nan|inf): give a finite score"):
        Inspector(FakeEngine(), decision)


def test_the_inspector_keeps_its_own_copy_of_the_decision_config():
    decision = DecisionConfig(image_threshold=10.0)
    insp = Inspector(FakeEngine(), decision)
    decision.image_threshold = 1.0  # the caller's object, changed later, e.g. by another thread
    assert insp.image_threshold == 10.0 and insp.inspect(IMAGE).verdict == "PASS"


@pytest.mark.parametrize("value, match", [(10**400, "of 401 digits: give a finite score"), (np.complex128(1), "give a number")],
                         ids=["huge int", "complex"])
def test_with_thresholds_refuses_what_is_no_real_finite_number(value, match):
    """10**400 raised OverflowError; a numpy complex was taken, to fail with TypeError at the first part."""
    with pytest.raises(InspectorError, match=match):
        Inspector(FakeEngine()).with_thresholds(image=value)


def test_numpy_thresholds_come_back_as_plain_floats():
    insp = Inspector(FakeEngine()).with_thresholds(image=np.float32(3.5), pixel=np.int64(2))
    r = insp.inspect(IMAGE)
    assert type(insp.image_threshold) is float and type(r.threshold) is float and type(r.pixel_threshold) is float
    json.dumps({"threshold": r.threshold, "pixel_threshold": r.pixel_threshold})  # np.float32 is not JSON-able


def test_a_path_as_source_gives_a_record_of_json():
    """source=Path(...) was kept as it was, and to_record()'s JSON failed later, away from the call."""
    r = Inspector(FakeEngine()).inspect(IMAGE, source=Path("/line/cam1/part.png"))
    assert r.source == "/line/cam1/part.png"
    json.dumps(r.to_record(), allow_nan=False)


@pytest.mark.parametrize("kw", [{"serial": 12345}, {"inspection_id": 7}, {"source": 3.0}])
def test_serials_ids_and_sources_that_are_not_strings_are_refused(kw):
    """A number went into the record as a number, where the contract has a string (the daemon refuses it too)."""
    with pytest.raises(InspectorError, match=r"give a str or None, not (int|float) \(e\.g\. str\("):
        Inspector(FakeEngine()).inspect(IMAGE, **kw)


def test_inspect_batch_takes_any_iterable_and_names_the_bad_image():
    insp = Inspector(FakeEngine())
    assert len(insp.inspect_batch(img for img in (IMAGE, IMAGE[:20]))) == 2  # TypeError: generator has no len()
    assert len(insp.inspect_batch((IMAGE,))) == 1
    with pytest.raises(InspectorError, match=r"inspect_batch: images\[1\]: image array: shape \(4, 4, 3\)"):
        insp.inspect_batch([IMAGE, np.zeros((4, 4, 3), np.uint8), IMAGE])
    with pytest.raises(InspectorError, match="inspect_batch: give a list of images, not a int"):
        insp.inspect_batch(5)


@pytest.mark.parametrize("array, fix", [(IMAGE / 255.0, r"\(a \* 255\)\.clip\(0, 255\)\.astype\(np\.uint8\) for values 0-1"),
                                        (IMAGE.astype(np.float32), r"a\.clip\(0, 255\)\.astype\(np\.uint8\) for 0-255"),
                                        (IMAGE[..., 0] > 100, r"a\.astype\(np\.uint8\) \* 255 for a mask"),
                                        (IMAGE.astype(np.int64), r"a\.astype\(np\.uint8\) for values 0-255")])
def test_arrays_of_other_numbers_are_refused_with_the_conversion_to_make(array, fix):
    """It said "scale floats to 0-255 first", which leaves them floats, refused again (and said it of a bool mask)."""
    with pytest.raises(InspectorError, match=f"image array: dtype {array.dtype}; give uint8 or uint16 pixels, e.g. .*{fix}"):
        Inspector(FakeEngine()).inspect(array)


@pytest.mark.parametrize("model", [None, 5])
def test_load_names_a_model_that_is_no_path(model):
    with pytest.raises(InspectorError, match=f"model {model}: give the path of a checkpoint"):  # was TypeError
        Inspector.load(model)


def test_load_names_an_empty_model_a_device_or_a_decision_of_the_wrong_type(tmp_path, monkeypatch):
    """"" opened the folder one was in; device=None or 0 was AttributeError 'partition', a dict of decision settings
    AttributeError 'image_threshold'."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InspectorError, match="model '': give the path of a checkpoint"):
        Inspector.load("")
    for device in (None, 0):
        with pytest.raises(InspectorError, match=f"device {device}: give 'cpu', 'cuda' or 'cuda:N'"):
            Inspector.load(tmp_path, device=device)
    with pytest.raises(InspectorError, match=r"decision of type dict: give an inspector\.decision\.DecisionConfig"):
        Inspector(FakeEngine(), {"image_threshold": 3.0})


def test_overlay_of_a_map_with_nan_or_infinity_draws_them_hottest_without_warnings():
    """A broken model's NaN was cast to uint8 (RuntimeWarning, any colour); an infinite peak made the whole map cold."""
    from inspector.overlay import render_overlay

    amap = np.zeros((64, 64), np.float32)
    amap[40, 10], amap[40, 30], amap[40, 50] = np.nan, np.inf, 9.0  # below the verdict's tag, at the top left
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = render_overlay(np.full((64, 64, 3), 128, np.uint8), amap, 1.0, "FAIL", [])
    assert (out[40, 10] == out[40, 50]).all() and (out[40, 30] == out[40, 50]).all()
    assert not (out[40, 50] == out[50, 40]).all()  # the hottest differs from the cold, finite background


def test_a_pil_image_whose_file_was_closed_is_named_with_the_fix(tmp_path):
    """`with Image.open(path) as im: ...` then inspect(im): a bare AssertionError from Pillow, with no message."""
    from PIL import Image

    path = tmp_path / "part.png"
    Image.fromarray(IMAGE).save(path)
    with Image.open(path) as closed:
        pass
    with pytest.raises(InspectorError, match=r"image PIL image: its file was closed .* call \.load\(\) inside the block"):
        Inspector(FakeEngine()).inspect(closed)
    with Image.open(path) as loaded:
        loaded.load()
    assert Inspector(FakeEngine()).inspect(loaded).image_shape == (40, 48)


def test_load_image_comes_from_the_package_as_inspector_does():
    """overlay() wants the inspected image's RGB, as load_image gives it (upright by EXIF, 16 bits stretched)."""
    import inspector
    from inspector import LoadedImage, load_image

    assert {"load_image", "LoadedImage"} <= set(inspector.__all__)
    loaded = load_image(IMAGE[..., 0])
    assert isinstance(loaded, LoadedImage) and loaded.rgb.shape == (40, 48, 3)


def test_what_the_api_raises_comes_from_the_package_and_its_hints_are_marked_for_mypy():
    """An integrator could catch the API's errors only as model.errors.InspectorError, which no page named; and mypy
    read none of the hints ("missing library stubs or py.typed marker"), every result typed Any."""
    from importlib.resources import files

    import inspector
    import model.errors

    assert "InspectorError" in inspector.__all__ and inspector.InspectorError is model.errors.InspectorError
    with pytest.raises(inspector.InspectorError):
        Inspector(FakeEngine()).inspect(None)
    assert files("inspector").joinpath("py.typed").is_file() and files("model").joinpath("py.typed").is_file()


class PlainEngine(FakeEngine):
    """FakeEngine without its lock, which does not pickle (a torch engine does)."""

    def __init__(self) -> None:
        super().__init__()
        del self.guard

    def infer(self, batch: np.ndarray) -> HeadOutput:
        n = len(batch)
        return HeadOutput(np.full(n, 5.0, np.float32), np.zeros((n, *SIZE), np.float32))


def test_an_inspector_still_pickles_for_a_worker_process():
    """As it did before it held a lock (multiprocessing sends it to its workers so)."""
    import pickle

    insp = Inspector(PlainEngine()).with_thresholds(image=7.0)
    copy = pickle.loads(pickle.dumps(insp))
    assert copy.image_threshold == 7.0 and copy.inspect(IMAGE).verdict == "PASS"
    assert copy._shared is not insp._shared
    insp.close()
    with pytest.raises(InspectorError, match="closed"):
        pickle.loads(pickle.dumps(insp)).inspect(IMAGE)


@pytest.mark.parametrize("lang", [["en"], {"lang": "en"}])
def test_describe_names_a_language_that_is_no_string(lang):
    r = Inspector(FakeEngine()).inspect(IMAGE)
    with pytest.raises(InspectorError, match="choose one of en, zh, es"):  # was TypeError: unhashable type
        r.describe(lang)
