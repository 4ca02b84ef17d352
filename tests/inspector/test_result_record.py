"""The result record's image size and rounding, times with and without zones, the error payload and the overlay."""

from __future__ import annotations

import json
from datetime import timezone as _tz

import numpy as np
import pytest

from inspector.decision import Region
from inspector.result import InspectionResult, error_payload, parse_utc


def _result(**kw):
    base = dict(inspection_id="i1", verdict="FAIL", score=2.0, threshold=1.0, pixel_threshold=1.0,
                regions=[Region(box=(1, 2, 3, 4), area_px=12, peak=2.0, mean=1.5, severity="low")],
                anomaly_map=np.zeros((4, 6), np.float32), image_shape=(4, 6), image_sha256="ab", model={"name": "m"},
                timings_ms={"infer": 1.23456}, type_confidence=0.123456)
    base.update(kw)
    return InspectionResult(**base)


def test_result_record_width_height_and_rounding():
    rec = _result().to_record()
    assert rec["image"] == {"width": 6, "height": 4, "sha256": "ab"}
    assert rec["timings_ms"] == {"infer": 1.235}
    assert rec["type_confidence"] == 0.1235
    assert _result().defects == _result().regions


def test_result_overlay_refuses_a_non_uint8_or_wrongly_shaped_image():
    from model.errors import InspectorError

    r = _result()
    with pytest.raises(InspectorError):
        r.overlay(np.zeros((4, 6, 3), np.float32))
    with pytest.raises(InspectorError):
        r.overlay(np.zeros((4, 6, 4), np.uint8))


def test_result_parse_utc_zone_and_range():
    assert parse_utc("2026-01-02T03:04:05", _tz.utc) == "2026-01-02T03:04:05.000Z"
    assert parse_utc("2026-01-02T03:04:05+01:00") == "2026-01-02T02:04:05.000Z"
    from zoneinfo import ZoneInfo

    chicago = ZoneInfo("America/Chicago")  # UTC-6 in January
    assert parse_utc("2026-01-02T03:04:05", chicago) == "2026-01-02T09:04:05.000Z"  # no offset: on the zone's clock
    assert parse_utc("2026-01-02T03:04:05+01:00", chicago) == "2026-01-02T02:04:05.000Z"  # an offset wins over the zone
    with pytest.raises(ValueError):
        parse_utc("0001-01-01T00:00:00+01:00")  # before year 1 in UTC


def test_result_error_payload_shape():
    d = json.loads(error_payload("bad image", "mqtt", "i1", "S1", code=3))
    assert {k: d[k] for k in ("error", "input", "inspection_id", "serial", "code")} == \
        {"error": "bad image", "input": "mqtt", "inspection_id": "i1", "serial": "S1", "code": 3}
    assert d["timestamp"].endswith("Z")


def test_result_overlay_draws_on_the_inspected_image():
    out = _result().overlay(np.zeros((4, 6, 3), np.uint8))
    assert isinstance(out, np.ndarray) and out.shape == (4, 6, 3) and out.dtype == np.uint8


def test_a_records_warnings_carry_their_kinds_for_software_that_cannot_read_english():
    from model.quality import WARNINGS

    texts = [WARNINGS["dark"], "image 640x480 px is unlike the training images (256x256 px); check the camera's resolution, crop and orientation, or fit on images like it",
             "something new"]
    rec = _result(warnings=texts).to_record()
    assert rec["warnings"] == texts and rec["warning_kinds"] == ["dark", "size", "other"]
    assert "warning_kinds" not in _result().to_record()  # as "warnings": only when there are any


def test_the_record_carries_the_pixel_threshold_that_drew_its_regions():
    """A QA engineer checking a region table (each region's peak) had no pixel threshold to check it against, and one
    changed by `threshold --pixel` left no trace in the records."""
    assert _result(pixel_threshold=0.75).to_record()["pixel_threshold"] == 0.75
    assert _result(pixel_threshold=float("nan")).to_record()["pixel_threshold"] is None  # JSON has no NaN
