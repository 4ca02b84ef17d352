"""`inspector eval MODEL DATA --report DIR`: the evaluation as a validation report QA can sign (reports/validation.py)."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inspector.commands.common import add_letterhead_args, name_list
from model.errors import InspectorError
from model.label_names import GOOD

if TYPE_CHECKING:
    from inspector.commands.evaluate import Evaluation


def add_report_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("validation report (QA sign-off before a station goes into production)")
    g.add_argument("--report", metavar="DIR", help="also write the evaluation as a validation report (HTML and PDF) into DIR")
    g.add_argument("--lang", help="with --report: en, zh or es (default en)")
    g.add_argument("--format", help="with --report: html, pdf or html,pdf (default)")
    g.add_argument("--tz", metavar="ZONE", help="with --report: the zone of its date, an IANA name, UTC or local (default local)")
    add_letterhead_args(g, "with --report: ")


REPORT_OPTIONS = ("lang", "format", "tz", "organisation", "document", "logo")


def report_style(args: argparse.Namespace) -> dict[str, Any] | None:
    """The report's settings, checked before any image is scored (a bad --lang costs no time); None without --report
    (evaluate.py refuses its options without it)."""
    if args.report is None:
        return None
    from reports import ReportError
    from reports.letterhead import letterhead
    from reports.render import Page, out_folder

    if not args.report.strip():
        raise InspectorError("--report '': give the folder to write the validation report into")
    style = {"lang": args.lang or "en", "formats": tuple(name_list(args.format)) if args.format is not None else ("html", "pdf"),
             "tz": args.tz or "local"}
    new_folder = not Path(args.report).exists()
    try:
        style["letterhead"] = letterhead(args.organisation, args.document, args.logo)
        Page.of(style["lang"], style["formats"], style["tz"], style["letterhead"])
        out_folder(args.report, "--report")
    except ReportError as exc:
        raise InspectorError(str(exc)) from None
    args.report_folder_made = new_folder
    return style


def drop_unused_folder(args: argparse.Namespace) -> None:
    """The check above made --report's folder; an evaluation that failed after it leaves nothing there, not even it."""
    if getattr(args, "report_folder_made", False):
        with contextlib.suppress(OSError):
            Path(args.report).rmdir()  # only while empty


def overlay_uris(evaluation: Evaluation, indices: list[int]) -> dict[int, str | None]:
    """The overlays (map, regions, verdict) of these test images at the model's input size, as JPEG data URIs; an image
    that cannot be read again gets None (the report says so) rather than costing the report."""
    from inspector.api import judged
    from inspector.decision import DecisionConfig, find_regions
    from inspector.overlay import render_overlay
    from model.extract import load_batches
    from reports.images import THUMB_PX, array_uri

    meta, scored, test = evaluation.meta, evaluation.scored, evaluation.dataset.test
    uris: dict[int, str | None] = dict.fromkeys(indices)
    paths = [test[i].path for i in indices]
    try:
        for idx, batch, _rgbs, _at in load_batches(paths, meta.input_size, batch_size=4, framing=meta.framing):
            for j, x in zip(idx, batch, strict=True):
                i = indices[j]
                rgb = np.ascontiguousarray((x.transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8))
                amap = scored.maps[i]
                verdict = "FAIL" if scored.scores[i] >= meta.image_threshold else "PASS"
                regions = find_regions(judged(amap, meta.framing.ignored), meta.pixel_threshold, DecisionConfig()) if verdict == "FAIL" else []
                overlay = render_overlay(rgb, amap, meta.pixel_threshold, verdict, regions, ignored=meta.framing.ignored)
                uris[i] = array_uri(overlay, max_px=2 * THUMB_PX)
    except InspectorError:
        pass  # an image changed on disk since it was scored: the ones before it are kept
    return uris


def write_report(evaluation: Evaluation, args: argparse.Namespace, style: dict[str, Any]) -> dict[str, str]:
    """Render the evaluation's validation report into --report; returns {format: path}."""
    from inspector.version import __version__
    from reports import ReportError
    from reports.validation import ValidationRun, render_validation

    test, root, meta = evaluation.dataset.test, evaluation.dataset.root, evaluation.meta
    source = meta.manifest.get("source") or {}  # an export's: the checkpoint it came from
    trace = {"path": str(Path(meta.path).resolve()), "runtime": meta.runtime, "kind": meta.manifest.get("kind") or "checkpoint",
             "weights_sha256": source.get("weights_sha256") or meta.sha256, "version": __version__,
             "framing": meta.framing.summary(), "pixel_threshold": meta.pixel_threshold,
             "types_cv_accuracy": (meta.manifest.get("types") or {}).get("cv_accuracy"),
             # the region figures' masks: redrawn, they are another validation
             "masks_sha256": evaluation.dataset.masks_sha256 if evaluation.report.get("pixel_auroc") is not None else None}
    run = ValidationRun(report=evaluation.report, data=str(root.resolve()), model_sha256=meta.sha256,
                        data_sha256=evaluation.dataset.test_sha256,
                        names=[str(s.path.relative_to(root)) if s.path.is_relative_to(root) else str(s.path) for s in test],
                        labels=[s.defect_type if s.is_defect else GOOD for s in test], scores=evaluation.scored.scores,
                        threshold=meta.image_threshold, trace=trace, notes=list(evaluation.report.get("notes", [])))
    escapes, alarms = run.examples()
    run.thumbnails = overlay_uris(evaluation, escapes + alarms)
    try:
        return {k: str(v) for k, v in render_validation(run, args.report, **style).items()}
    except ReportError as exc:
        raise InspectorError(str(exc)) from None
