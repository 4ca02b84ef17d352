"""The benchmarks, QA reviews and the validation report: what a demanding user met running them."""

from __future__ import annotations

import html
import re

import numpy as np

from reports.render import Page
from reports.validation import ValidationRun, validation_html
from tests.inspector.test_review_access import fill


def _text(page: str) -> str:
    page = re.sub(r"<svg.*?</svg>|<style.*?</style>", "", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _run(**report) -> ValidationRun:
    labels = ["good", "good", "crack", "crack"]
    base = {"n_good": 2, "n_defect": 2, "image_auroc": 0.9, "image_ap": 0.8, "f1_max": 0.7, "fpr_at_recall_99": 0.5,
            "tpr_at_fpr_1": 0.25, "pixel_auroc": None, "aupro": None, "ms_per_image": 12.5, "fit_seconds": None,
            "per_type_auroc": {"crack": 0.75}, "at_threshold": {"threshold": 1.0, "calibrated_on_these_images": False},
            "model": {"id": "abc123", "backbone": "efficientnet-lite0", "runtime": "onnx-cpu", "input_size": [64, 64]}}
    return ValidationRun(report={**base, **report}, data="data/line1", data_sha256="d" * 64, model_sha256="m" * 64,
                         names=[f"test/{x}/{i}.png" for i, x in enumerate(labels)], labels=labels,
                         scores=np.array([0.0, 0.5, 2.0, 0.7]), threshold=1.0)


def test_the_type_heads_two_sentences_are_apart():
    """trim_blocks took the newline between them: 'so this flatters it.Cross-validated on its own labelled images' (en, es)."""
    run = _run(type_accuracy=0.5, type_macro_f1=0.5, types_fitted_on_these_images=2)
    run.trace = {"types_cv_accuracy": 0.72}
    en = _text(validation_html(run, Page.of("en", ("html",), "UTC", None)))
    assert "so this flatters it. Cross-validated on its own labelled images, it named 72.0% right." in en
    es = _text(validation_html(run, Page.of("es", ("html",), "UTC", None)))
    assert re.search(r"favorece\. \S", es), es


def test_a_second_review_says_which_review_it_replaces(tmp_path, capsys):
    """QA at rework reviewed a part another QA had reviewed as a crack: the new verdict stood (the shift report counts
    it) and nothing said one was overruled."""
    import json

    from tests.cli import cli

    ident = fill(tmp_path / "store", 3)[0]["inspection_id"]
    rc, out, err = cli(capsys, "review", "--db", tmp_path / "store", ident, "--truth", "defect", "--type", "crack", "--by", "A. Li")
    assert rc == 0 and "replaces" not in out, err
    rc, out, err = cli(capsys, "review", "--db", tmp_path / "store", ident, "--truth", "good", "--by", "B. Ortiz", "--json")
    earlier = json.loads(out)["reviews"][0]["replaces"]
    assert rc == 0 and (earlier["by"], earlier["truth"], earlier["type"]) == ("A. Li", "defect", "crack")
    rc, out, err = cli(capsys, "review", "--db", tmp_path / "store", ident, "--truth", "good", "--by", "C. Wu")
    assert rc == 0 and re.search(r"\(replaces B\. Ortiz's review of \S+Z: good\)$", out.strip()), out


def test_bench_serve_says_a_baseline_slower_than_the_station_means_nothing(tmp_path, capsys, monkeypatch):
    """On 2 CPUs loaded by other processes the model alone took 92-524 ms in bench serve's process while the station
    answered in 47 ms: 'p50 is 0.10x that' was printed as a result (no station answers before it has inspected)."""
    import json

    import inspector.commands.bench_serve as bs
    import inspector.config
    from tests.cli import cli

    class Client:
        def stop(self, *_):
            pass

    measured = {"mode": "image", "rate_target": 10.0, "sent": 5, "results": 5, "errors": 0, "lost": 0, "send_rate": 10.0,
                "frames_per_s": 10.0, "latency_ms": {"p50": 47.0, "p90": 50.0, "p99": 52.0, "mean": 48.0, "max": 52.0},
                "error_samples": [], "stored_as": "bench-x-*"}
    monkeypatch.setattr(inspector.config, "load_config", lambda path: object())
    monkeypatch.setattr(bs, "connect", lambda cfg: Client())
    monkeypatch.setattr(bs, "bench_serve", lambda cfg, **kw: json.loads(json.dumps(measured)))
    monkeypatch.setattr(bs, "load_average", lambda: 2.5)
    monkeypatch.setattr(bs, "engine_alone", lambda cfg, image: 470.0)
    rc, out, err = cli(capsys, "bench", "serve", "--config", tmp_path / "st.yaml")
    assert rc == 0 and "p50 is 0.10x that" in out and re.search(r"note: p50 is below the station's model alone .*load average 2\.5", out), out
    rc, out, err = cli(capsys, "bench", "serve", "--config", tmp_path / "st.yaml", "--json")
    got = json.loads(out)
    assert got["load_average_1m"] == 2.5 and "ratio means nothing" in got["note"]
    monkeypatch.setattr(bs, "engine_alone", lambda cfg, image: 20.0)  # a baseline below p50: a ratio, nothing to say
    rc, out, err = cli(capsys, "bench", "serve", "--config", tmp_path / "st.yaml", "--json")
    assert json.loads(out)["note"] is None and json.loads(out)["p50_vs_engine_alone"] == 2.35


def test_bench_model_refuses_calib_it_would_not_use(tmp_path, capsys):
    """--calib with --exports (or an export as the model) was ignored without a word: the INT8 engine timed was the one
    given, calibrated on whatever it was exported with."""
    from tests.cli import assert_one_line_error, cli

    ckpt, data, calib = tmp_path / "m.ckpt", tmp_path / "data", tmp_path / "calib"
    for folder in (ckpt, data, calib):
        folder.mkdir()
    (ckpt / "manifest.json").write_text("{}")
    (tmp_path / "m.onnx").write_bytes(b"x")
    rc, out, err = cli(capsys, "bench", "model", ckpt, data, "--exports", tmp_path / "m.onnx", "--calib", calib)
    assert_one_line_error(rc, err, f"--calib {calib}", "drop --calib")


def test_a_new_pixel_threshold_gets_its_own_validation_report():
    """`inspector threshold CKPT --pixel 9` keeps the weights and the image threshold: eval --report into the same folder
    overwrote the report (perhaps signed) of the old pixel threshold, whose region figures differ."""
    from reports.validation import validation_name

    old, same, new = _run(), _run(), _run()
    old.trace, same.trace, new.trace = {"pixel_threshold": 7.732598}, {"pixel_threshold": 7.732598}, {"pixel_threshold": 9.0}
    assert validation_name(old) == validation_name(same) != validation_name(new)


def test_bench_report_refuses_an_empty_keep(capsys):
    """`--keep "$DIR"` with DIR unset ran the whole benchmark in a temporary folder and kept nothing, without a word."""
    from tests.cli import assert_one_line_error, cli

    rc, out, err = cli(capsys, "bench", "report", "--n", "1", "--repeat", "1", "--image-size", "32", "--keep", "")
    assert_one_line_error(rc, err, "--keep ''")


def test_review_export_refuses_an_empty_folder_name(tmp_path, capsys, monkeypatch):
    """`--export "$DIR"` with DIR unset copied the reviewed images into the working folder (good/, crack/ beside the
    user's files) when it was empty."""
    from tests.cli import assert_one_line_error, cli

    ident = fill(tmp_path / "store", 3)[0]["inspection_id"]
    assert cli(capsys, "review", "--db", tmp_path / "store", ident, "--truth", "good")[0] == 0
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    rc, out, err = cli(capsys, "review", "--db", tmp_path / "store", "--export", "")
    assert_one_line_error(rc, err, "--export ''")
    assert not any((tmp_path / "here").iterdir())


def test_bench_serve_checks_its_image_before_sending_anything(tmp_path, capsys, monkeypatch):
    """--image naming a file that is no image was sent --count times, each refused by the station (and counted in its
    shift report as refused on arrival), then read 'no results within 60 s'."""
    from types import SimpleNamespace

    import cv2

    import inspector.commands.bench_serve as bs
    import inspector.config
    from tests.cli import assert_one_line_error, cli

    cfg = SimpleNamespace(mqtt=SimpleNamespace(protocol="5", max_payload_bytes=2048), model=SimpleNamespace(max_image_pixels=None))
    monkeypatch.setattr(inspector.config, "load_config", lambda path: cfg)

    def connect(cfg):
        raise AssertionError("connected: inputs would be sent")

    monkeypatch.setattr(bs, "connect", connect)
    (tmp_path / "notes.txt").write_text("not an image")
    rc, out, err = cli(capsys, "bench", "serve", "--config", tmp_path / "st.yaml", "--image", tmp_path / "notes.txt")
    assert_one_line_error(rc, err, str(tmp_path / "notes.txt"), "cannot be decoded", "nothing was sent")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # incompressible: a PNG over 2 kB
    cv2.imwrite(str(tmp_path / "big.png"), noise)
    rc, out, err = cli(capsys, "bench", "serve", "--config", tmp_path / "st.yaml", "--image", tmp_path / "big.png")
    assert_one_line_error(rc, err, f"--image {tmp_path / 'big.png'}", "mqtt.max_payload_bytes (2048)")


def test_bench_serve_says_the_station_refused_its_inputs_not_that_it_did_not_answer():
    """Every input refused at once (a full queue, a camera that fails) read 'no results within 60 s', as if the
    station had not answered."""
    import json
    import queue
    from types import SimpleNamespace

    import pytest

    from inspector.commands.bench_serve import bench_serve
    from inspector.mqtt import Message, Topics
    from model.errors import InspectorError

    topics = Topics("t/st")

    class Refusing:
        inbox: queue.Queue = queue.Queue()

        def publish(self, topic, payload, qos=1, user=None):
            ident = (user or {}).get("inspection_id") or json.loads(payload)["inspection_id"]
            self.inbox.put(Message(topics.error, json.dumps({"inspection_id": ident, "error": "queue full"}).encode(), 1, 0))

        def stop(self, *_):
            pass

    cfg = SimpleNamespace(mqtt=SimpleNamespace(prefix="t/st", protocol="5"))
    with pytest.raises(InspectorError) as exc:
        bench_serve(cfg, rate=100.0, count=3, warmup=0, image=b"png", timeout=5.0, client=Refusing())
    assert str(exc.value) == "bench serve: the station refused all 3 of the 3 inputs, e.g. queue full"
