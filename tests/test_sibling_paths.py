"""Paths beside one another that must do alike: fit beside eval, the reports and the live view beside inspect, bench
serve beside serve."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np

from tests.cli import assert_one_line_error, cli


def test_fit_names_every_unusable_mask_before_fitting(capsys, tiny_data, tmp_path, monkeypatch):
    import model.fit as fit_module

    data = shutil.copytree(tiny_data, tmp_path / "data")
    gt = data / "ground_truth" / "blob"
    cv2.imwrite(str(gt / "001_mask.png"), cv2.resize(cv2.imread(str(gt / "001_mask.png"), 0), (48, 48)))
    (gt / "003_mask.png").write_bytes(b"not a png")

    def no_features(*args, **kwargs):
        raise AssertionError("the feature pass ran before the masks were checked")

    monkeypatch.setattr(fit_module, "load_batches", no_features)
    rc, _, err = cli(capsys, "fit", data, "--out", tmp_path / "ck", "--size", "64", "--synth", "0")
    assert_one_line_error(rc, err, "2 of 4", "001_mask.png", "003_mask.png")


def test_bench_serve_checks_the_image_against_the_stations_pixel_limit(tmp_path, capsys, monkeypatch):
    from types import SimpleNamespace

    import inspector.commands.bench_serve as bs
    import inspector.config

    cfg = SimpleNamespace(mqtt=SimpleNamespace(protocol="5", max_payload_bytes=20_000_000, prefix="p"),
                          model=SimpleNamespace(max_image_pixels=1000))
    monkeypatch.setattr(inspector.config, "load_config", lambda path: cfg)

    def connect(cfg):
        raise AssertionError("connected: inputs the station refuses would be sent")

    monkeypatch.setattr(bs, "connect", connect)
    cv2.imwrite(str(tmp_path / "wide.png"), np.zeros((64, 64, 3), np.uint8))  # 4,096 px over a limit of 1,000
    rc, out, err = cli(capsys, "bench", "serve", "--config", tmp_path / "st.yaml", "--image", tmp_path / "wide.png")
    assert_one_line_error(rc, err, str(tmp_path / "wide.png"), "max_image_pixels")


def test_a_resealed_image_size_that_is_not_pairs_does_not_raise_at_inspection(tiny_ckpt, tiny_data, tmp_path):
    from inspector.api import Inspector
    from model.checkpoint import _manifest_digest

    ckpt = shutil.copytree(tiny_ckpt, tmp_path / "resealed.ckpt")
    path = ckpt / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["training"]["image_size"] = {"min": 96, "max": [96, 96], "aspect": [1.0, 1.0]}  # a hand edit, resealed
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    path.write_text(json.dumps(manifest))
    image = next((tiny_data / "test" / "good").iterdir())
    Inspector.load(ckpt).inspect(image)  # TypeError: cannot unpack non-iterable int object


def test_the_parts_csv_counts_every_region_found_not_the_20_listed():
    import csv
    import io

    from reports.records import inspection
    from reports.render import parts_csv

    record = {"inspection_id": "a1", "serial": "S1", "station": "st", "timestamp": "2026-12-06T07:00:00Z", "verdict": "FAIL",
              "score": 3.0, "threshold": 1.0, "defects_found": 35,
              "defects": [{"type": "scratch", "box": [i, i, 2, 2], "area_px": 4, "severity": "high"} for i in range(20)]}
    (row,) = csv.DictReader(io.StringIO(parts_csv([inspection(record)]).decode()))
    assert row["regions"] == "35"


def test_the_shift_reports_failed_table_and_the_live_view_count_every_region_found(tmp_path):
    """Beside the parts CSV: the failed-parts table and the live view's Regions cell said 20 for 35."""
    from reports import render_shift
    from reports.render import live_html

    record = {"inspection_id": "a1", "serial": "S1", "station": "st", "timestamp": "2026-12-06T07:00:00Z", "verdict": "FAIL",
              "score": 3.0, "threshold": 1.0, "defects_found": 35,
              "defects": [{"type": "scratch", "box": [i, i, 2, 2], "area_px": 4, "severity": "high"} for i in range(20)]}
    page = render_shift([record], {}, tmp_path, formats=("html",))["html"].read_text(encoding="utf-8")
    assert '<td class="num">35</td>' in page and '<td class="num">20</td>' not in page
    assert '<th scope="row">Regions</th><td>35</td>' in live_html([record], {"status": "ok"})

