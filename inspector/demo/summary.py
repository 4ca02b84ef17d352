"""The demo's closing numbers: AUROC on the held-out line parts, verdicts against the truth, latency, report times."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inspector.demo.product import LinePart
from model.metrics import roc_auc

STAGES = ("intake", "queue", "decode", "preprocess", "infer", "decision", "total")
STAGE_HELP = {
    "intake": "trigger/frame arrival -> accepted and journaled",
    "queue": "accepted -> its inference batch starts",
    "decode": "image decode (per image)",
    "preprocess": "resize + normalise (per image)",
    "infer": "ONNX Runtime forward pass (per image of the batch)",
    "decision": "threshold, defect regions",
    "total": "arrival -> result stored",
}


@dataclass
class DemoSummary:
    """Everything the final table shows; also written to summary.json."""

    mode: str
    n_parts: int = 0
    n_good: int = 0
    n_defect: int = 0
    n_records: int = 0
    image_auroc: float | None = None
    defects_caught: int = 0
    types_named: int = 0  # caught defects whose named type is the true one
    false_alarms: int = 0
    threshold: float | None = None
    policy: str = ""
    latency_ms: dict[str, float] = field(default_factory=dict)
    report_seconds: dict[str, float] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)
    artefacts: dict[str, str] = field(default_factory=dict)


def score_line(summary: DemoSummary, records: list[dict[str, Any]], frame_of: dict[str, int], parts: list[LinePart]) -> None:
    """Match each stored record to the part it inspected and fill AUROC, catches and false alarms."""
    labels, scores, fails = [], [], []
    for r in records:
        i = frame_of.get(r["inspection_id"])
        if i is None:
            continue
        labels.append(parts[i].is_defect)
        scores.append(float(r["score"]))
        fails.append(r["verdict"] == "FAIL")
        summary.types_named += int(fails[-1] and parts[i].is_defect and r.get("defect_type") == parts[i].truth)
    y, s, f = np.array(labels, bool), np.array(scores), np.array(fails, bool)
    summary.n_parts, summary.n_records = len(parts), len(records)
    summary.n_defect = sum(p.is_defect for p in parts)
    summary.n_good = summary.n_parts - summary.n_defect
    auc = roc_auc(y, s) if y.size else float("nan")
    summary.image_auroc = None if np.isnan(auc) else round(float(auc), 4)
    summary.defects_caught, summary.false_alarms = int((f & y).sum()), int((f & ~y).sum())


def latency(records: list[dict[str, Any]]) -> dict[str, float]:
    """Median milliseconds per stage over the stored records."""
    out = {}
    for stage in STAGES:
        values = [r["timings_ms"][stage] for r in records if isinstance(r.get("timings_ms", {}).get(stage), (int, float))]
        if values:
            out[stage] = round(statistics.median(values), 2)
    return out


def _secs(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{int(s // 60)} min {s % 60:.0f} s"


def _auroc(value: float) -> str:
    """Three decimals, rounded down as the reports round a yield: 0.9998 (one good part above one defect) read 1.000,
    a perfect separation that did not happen; summary.json keeps four."""
    return f"{math.floor(round(value * 1000, 6)) / 1000:.3f}"


def table(s: DemoSummary) -> str:
    """The final table, plain text."""
    rows: list[tuple[str, str]] = [
        ("station mode", s.mode),
        ("held-out parts on the line", f"{s.n_parts} ({s.n_good} good, {s.n_defect} defective); {s.n_records} stored results"),
        ("image AUROC (held-out parts)", "n/a" if s.image_auroc is None else _auroc(s.image_auroc)),
        ("threshold", "n/a" if s.threshold is None else f"{s.threshold:.3f} ({s.policy})"),
        ("defects caught (FAIL)", f"{s.defects_caught} of {s.n_defect}; type named right for {s.types_named} of them"),
        ("false alarms (good parts FAILed)", f"{s.false_alarms} of {s.n_good}"),
    ]
    rows.append(("median latency per stage", ""))
    rows += [(f"  {k}", f"{v:8.1f} ms   {STAGE_HELP[k]}") for k, v in s.latency_ms.items()]
    rows.append(("report render times", ""))
    rows += [(f"  {k}", f"{v:8.2f} s") for k, v in s.report_seconds.items()]
    rows.append(("demo wall time", ""))
    rows += [(f"  {k}", _secs(v)) for k, v in s.step_seconds.items()]
    width = max(len(k) for k, _ in rows) + 2
    rule = "-" * min(100, width + max(len(v) for _, v in rows))
    return "\n".join([rule, *(f"{k.ljust(width)}{v}" for k, v in rows), rule])
