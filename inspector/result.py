"""The inspection result and its JSON record (the contract in ARCHITECTURE.md)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any

import numpy as np

from inspector.decision import Region


def utc_now() -> str:
    return iso_utc(datetime.now(timezone.utc))


def error_payload(text: str, origin: str, inspection_id: str | None = None, serial: str | None = None, **extra: Any) -> str:
    """The error topic's JSON, one shape for every rejected input and failed command: rejections at intake, failed
    inspections, reviews and reloads each had their own (some without the time, the id or the serial)."""
    return json.dumps({"error": text, "input": origin, "inspection_id": inspection_id, "serial": serial, "timestamp": utc_now(), **extra})


def warning_kinds(warnings: list[str]) -> list[str]:
    """Each warning's kind (size, locate, edge, dark, overexposed, blank, blurred, damaged, or other), for a line's software that
    must not parse English: records carried the texts alone."""
    try:
        from reports.warnings import warning_kind
    except ImportError:  # the reports package left out: the texts still say it
        return ["other"] * len(warnings)
    return [warning_kind(w) or "other" for w in warnings]


def iso_utc(t: datetime) -> str:
    """The store's timestamp form, 2026-11-26T06:00:00.000Z; a naive time is taken as local time."""
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(text: str, zone: tzinfo | None = None) -> str:
    """An ISO 8601 time in the store's form, which sorts as text; without an offset it is on `zone`'s clock (None:
    this machine's). ValueError if it is not one (or out of the calendar's range)."""
    from reports.zones import iso_datetime, on_clock

    try:
        t = iso_datetime(text)
        return iso_utc(t if t.tzinfo else on_clock(t, zone))
    except OverflowError:
        raise ValueError(f"{text!r} is out of range") from None


@dataclass(frozen=True)
class Reply:
    """What an answer echoes from the MQTT 5 input it answers: the input's correlation data, and its Response Topic,
    which gets a copy of the answer besides the contract topic (result, report or error) that every answer goes to."""

    correlation: bytes | None = None
    topic: str | None = None

    def to_meta(self) -> dict[str, str | None]:
        """JSON-able, for the journal."""
        return {"correlation": self.correlation.hex() if self.correlation is not None else None, "response_topic": self.topic}

    @staticmethod
    def of(correlation: bytes | None, topic: str | None) -> Reply | None:
        """The Reply an input asks for, or None where it gave neither (nothing to echo, nowhere else to answer)."""
        return Reply(correlation, topic or None) if correlation is not None or topic else None

    @staticmethod
    def from_meta(meta: Any) -> Reply | None:
        """The Reply `to_meta` journaled; what is not as it writes it (a job edited by hand) is left out, and the answer
        goes to the contract topic alone: raised, it ended the journal's recovery, and the station inspected nothing."""
        if not isinstance(meta, dict):
            return None
        corr, topic = meta.get("correlation"), meta.get("response_topic")
        try:
            corr = None if corr is None else bytes.fromhex(corr)
        except (TypeError, ValueError):
            corr = None
        return Reply.of(corr, topic if isinstance(topic, str) else None)


@dataclass
class InspectionResult:
    """One inspected part. `anomaly_map`: float32 [H, W] at the original (upright) image's size, as `regions`' boxes
    (x, y, width, height) are in its pixels; not part of the JSON record (`to_record`). It pickles whole."""

    inspection_id: str
    verdict: str
    score: float
    threshold: float
    pixel_threshold: float
    regions: list[Region]
    anomaly_map: np.ndarray = field(repr=False)
    image_shape: tuple[int, int]
    image_sha256: str
    model: dict[str, str]
    timings_ms: dict[str, float]
    timestamp: str = field(default_factory=utc_now)
    station: str | None = None
    serial: str | None = None
    source: str | None = None
    defect_type: str | None = None
    type_confidence: float | None = None
    type_probs: dict[str, float] = field(default_factory=dict)  # every known type and `unknown`, when the model names types
    images: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. an image unlike the training images
    roi: tuple | None = None  # the part of the image the model inspected (x, y, w, h[, angle]: model.framing.Box); None: all
    # don't-care pixels (fit --ignore) at the model's input size, over `roi` (model.framing.ignored_in spreads them)
    ignored: np.ndarray | None = field(default=None, repr=False)
    regions_found: int | None = None  # before DecisionConfig.max_regions kept the most severe; None: all are listed

    @property
    def defects(self) -> list[Region]:
        return self.regions

    @property
    def found(self) -> int:
        """How many defect regions the map held; `defects` lists at most DecisionConfig.max_regions of them."""
        return max(self.regions_found or 0, len(self.regions))

    def to_record(self) -> dict[str, Any]:
        """JSON-able record: no images inline, only paths in `images`."""
        return {
            "inspection_id": self.inspection_id,
            "station": self.station,
            "serial": self.serial,
            "timestamp": self.timestamp,
            "verdict": self.verdict,
            # unrounded: a PASS one millionth below the threshold must not read as equal; a NaN (a broken model,
            # judged FAIL) is null, since JSON has no NaN and consumers parse strictly
            "score": float(self.score) if math.isfinite(self.score) else None,
            "threshold": float(self.threshold),
            # what drew `defects`: a region table is checked against it, and `threshold --pixel` changes it without a refit
            "pixel_threshold": float(self.pixel_threshold) if math.isfinite(self.pixel_threshold) else None,
            "defect_type": self.defect_type,
            "type_confidence": None if self.type_confidence is None else round(float(self.type_confidence), 4),
            "type_probs": dict(self.type_probs),
            "defects": [
                # an infinite map value (an FP16 export overflowing) made the peak Infinity: null, as the score
                {"type": r.type, "confidence": r.confidence, "box": list(r.box), "area_px": r.area_px, "area_mm2": r.area_mm2,
                 "severity": r.severity, "peak": r.peak if math.isfinite(r.peak) else None, "located_by": r.located_by}
                for r in self.regions
            ],
            "defects_found": self.found,
            "image": {"width": self.image_shape[1], "height": self.image_shape[0], "sha256": self.image_sha256},
            "model": dict(self.model),
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "images": dict(self.images),
            "source": self.source,
            **({"warnings": list(self.warnings), "warning_kinds": warning_kinds(self.warnings)} if self.warnings else {}),
        }

    def describe(self, lang: str = "en") -> str:
        from inspector.describe import describe

        return describe(self, lang)

    def overlay(self, rgb: np.ndarray) -> np.ndarray:
        """The heat map, regions and verdict drawn on `rgb`, the very image inspected (RGB uint8 [H, W, 3])."""
        from inspector.overlay import render_overlay
        from model.errors import InspectorError
        from model.framing import ignored_in

        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.shape != (*self.image_shape, 3):
            got = f"a {rgb.dtype} array of {rgb.shape}" if isinstance(rgb, np.ndarray) else f"a {type(rgb).__name__}"
            raise InspectorError(f"overlay: give the inspected image's RGB pixels, uint8 {(*self.image_shape, 3)}, not {got} "
                                 "(e.g. inspector.api.load_image(path).rgb)")

        ignored = None if self.ignored is None else ignored_in(self.ignored, self.image_shape, self.roi)
        return render_overlay(rgb, self.anomaly_map, self.pixel_threshold, self.verdict, self.regions, self.roi, ignored)
