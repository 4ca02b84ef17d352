"""The newcomer's path: `inspector demo --quick` end to end, with and without a broker, and every artefact it promises."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.cli import main
from inspector.demo.broker import find_mosquitto
from tests.cli import assert_one_line_error

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["mqtt", "no-mqtt"])
def demo(request, tmp_path_factory) -> dict:
    """One reduced demo run per mode: its output folder, printed text and summary."""
    pytest.importorskip("skimage", reason="the demo's texture ships in scikit-image: pip install 'inspector-edge[demo]'")
    if request.param == "mqtt" and find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); the broker variant needs it")
    out = tmp_path_factory.mktemp(f"demo-{request.param}") / "demo-output"
    buf = io.StringIO()  # capsys is function-scoped; this fixture runs once per mode
    with contextlib.redirect_stdout(buf):
        rc = main(["demo", "--quick", "--out", str(out), *([] if request.param == "mqtt" else ["--no-mqtt"])])
    text = buf.getvalue()
    assert rc == 0, text
    return {"mode": request.param, "out": out, "text": text, "summary": json.loads((out / "summary.json").read_text())}


def test_prints_each_step_and_the_table(demo):
    text, s = demo["text"], demo["summary"]
    for step in range(1, 6):
        assert f"[{step}/5]" in text
    assert "$ inspector fit " in text and "$ inspector export " in text
    assert f"parts {s['n_parts']}/{s['n_parts']}" in text  # the live line reached the end
    assert "image AUROC (held-out parts)" in text and "median latency per stage" in text
    if demo["mode"] == "mqtt":
        assert "started mosquitto (pid" in text and "mosquitto.conf" in text
        assert s["mode"].startswith("MQTT")
    else:
        assert "WITHOUT MQTT" in text
        assert "mosquitto" not in s["mode"]


def test_summary_numbers(demo):
    s = demo["summary"]
    labels = json.loads(Path(s["artefacts"]["labels"]).read_text())
    assert s["n_parts"] == len(labels) and s["n_records"] == len(labels)
    assert s["n_defect"] == sum(p["truth"] != "good" for p in labels) > 0
    assert s["image_auroc"] > 0.5  # the quick demo's 14 parts: better than chance (the full demo reads 1.000)
    assert 0 <= s["defects_caught"] <= s["n_defect"] and 0 <= s["false_alarms"] <= s["n_good"]
    assert 0 <= s["types_named"] <= s["defects_caught"]
    assert {"decode", "infer", "total"} <= set(s["latency_ms"]) and all(v >= 0 for v in s["latency_ms"].values())
    assert len(s["report_seconds"]) == 4 and all(v > 0 for v in s["report_seconds"].values())


def test_checkpoint_and_onnx_load(demo):
    import onnxruntime as ort

    from model.checkpoint import load_checkpoint

    s = demo["summary"]
    net, manifest = load_checkpoint(s["artefacts"]["checkpoint"])
    assert manifest["thresholds"]["image"] == pytest.approx(s["threshold"])
    session = ort.InferenceSession(s["artefacts"]["onnx"], providers=["CPUExecutionProvider"])
    h, w = net.config.input_size
    outputs = session.run(None, {session.get_inputs()[0].name: np.random.default_rng(0).random((2, 3, h, w), dtype=np.float32)})
    assert outputs[0].shape == (2,) and outputs[1].shape[0] == 2 and np.isfinite(outputs[0]).all()


def test_store_has_a_verdict_per_part(demo):
    from inspector.store import Store

    s = demo["summary"]
    store = Store(Path(s["artefacts"]["store"]).parent)
    try:
        records = store.records()
    finally:
        store.close()
    assert len(records) == s["n_parts"]
    assert {r["verdict"] for r in records} <= {"PASS", "FAIL"}
    assert sum(r["verdict"] == "FAIL" for r in records) == s["defects_caught"] + s["false_alarms"]
    assert all((Path(s["artefacts"]["store"]).parent / r["images"]["image"]).is_file() for r in records)
    if demo["mode"] == "mqtt":  # triggered by serial, and the broker acknowledged every result
        serials = {p["serial"] for p in json.loads(Path(s["artefacts"]["labels"]).read_text())}
        assert {r["serial"] for r in records} == serials
        assert all(r["published_at"] for r in records)
        # the summary's numbers are the store's, counted here apart (by serial, AUROC as Mann-Whitney's U)
        truth = {p["serial"]: p["truth"] != "good" for p in json.loads(Path(s["artefacts"]["labels"]).read_text())}
        fails = [(truth[r["serial"]], r["verdict"] == "FAIL") for r in records]
        assert sum(d and f for d, f in fails) == s["defects_caught"] and sum(f and not d for d, f in fails) == s["false_alarms"]
        bad, good = [r["score"] for r in records if truth[r["serial"]]], [r["score"] for r in records if not truth[r["serial"]]]
        u = sum((b > g) + 0.5 * (b == g) for b in bad for g in good)
        assert s["image_auroc"] == pytest.approx(u / (len(bad) * len(good)), abs=1e-4)


def test_video_has_one_frame_per_part(demo):
    s = demo["summary"]
    cap = cv2.VideoCapture(s["artefacts"]["video"])
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == s["n_parts"]


def test_reports_html_and_pdf(demo):
    a = demo["summary"]["artefacts"]
    shift = Path(a["shift_html"]).read_text(encoding="utf-8")
    assert "<h1>Demo shift</h1>" in shift and "tile-station" in shift and "<svg" in shift
    page = Path(a["inspection_html"]).read_text(encoding="utf-8")
    iid = Path(a["inspection_html"]).stem.removeprefix("inspection-")
    assert "Inspection report" in page and iid in page and "data:image/" in page
    for key, heading in (("shift_pdf", "Demo shift"), ("inspection_pdf", "Inspection report")):
        pdf = Path(a[key])
        assert pdf.read_bytes()[:5] == b"%PDF-"
        if shutil.which("pdftotext"):
            text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
            assert heading in text


def test_the_live_view_was_served_and_saved(demo):
    s = demo["summary"]
    assert re.search(r"live view: http://127\.0\.0\.1:\d+/ while the station runs", demo["text"])
    page = Path(s["artefacts"]["live_view"]).read_text(encoding="utf-8")
    assert "<h1>Live view</h1>" in page and "tile-station" in page and "data:image/jpeg" in page  # the last part's overlay
    assert f'<div class="v" id="inspected">{s["n_records"]}</div>' in page


def test_pictures_are_images(demo):
    a = demo["summary"]["artefacts"]
    pictures = [v for k, v in a.items() if k.startswith("picture_")]
    assert a["picture_parts"] in pictures
    for p in pictures:
        img = cv2.imread(p)
        assert img is not None and img.shape[0] > 16 and img.shape[1] > 16


def test_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds files the demo did not write" in err[0]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert_one_line_error(main(["demo", "--quick", "--out", str(f)]), capsys.readouterr().err, str(f), "is a file")


def test_a_folder_from_an_earlier_demo_is_emptied(tmp_path):
    from inspector.demo.run import MARKER, prepare_out

    (tmp_path / MARKER).write_text("")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "x.png").write_bytes(b"x")
    prepare_out(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER]


@pytest.mark.parametrize("missing, says", [("onnxscript", "the demo needs the onnxscript package"), ("weasyprint", "the demo: PDF reports need WeasyPrint")])
def test_the_demo_says_what_is_missing_before_any_work(tmp_path, capsys, monkeypatch, missing, says):
    """Installed without the ONNX or PDF extra, it fitted its station, then failed minutes later."""
    import sys

    from inspector.cli import main

    monkeypatch.setitem(sys.modules, missing, None)
    assert_one_line_error(main(["demo", "--out", str(tmp_path / "demo")]), capsys.readouterr().err, says)
    assert not (tmp_path / "demo").exists()
