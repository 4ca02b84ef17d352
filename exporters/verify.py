"""Parity of an exported model with the torch checkpoint it came from, on the same images.

Differences are reported as max |diff| and max relative diff, where relative means |diff| / max(|torch|, 1):
scores and maps are in units of the good-image spread, so values near 0 would make a plain ratio explode.
With labelled images (MVTec layout test/good + test/<defect>) the image AUROC of both is compared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import InspectorError
from model.progress import BarFactory, silent


@dataclass(frozen=True)
class Tolerance:
    score_rel: float | None  # max relative score difference
    map_rel: float | None  # max relative anomaly-map difference
    auroc: float  # max |change| of image AUROC (labelled data)
    drift: float  # max mean |score difference| (used when the data has no defects)
    types_abs: float | None = None  # max |difference| of a defect-type probability (models fitted with --labels)


EXACT = Tolerance(score_rel=1e-4, map_rel=1e-3, auroc=0.001, drift=1e-4, types_abs=1e-3)
REDUCED = Tolerance(score_rel=None, map_rel=None, auroc=0.005, drift=0.25)
TOLERANCES = {"onnx": EXACT, "onnx-fp16": REDUCED, "onnx-int8": REDUCED, "tensorrt-fp16": REDUCED, "tensorrt-int8": REDUCED}
# On a small test set one good/defect pair swapped by rounding moves the AUROC by 1 / (good x defect images),
# more than the tolerance below 200 pairs: that many swaps are always allowed.
SWAPPED_PAIRS = 2
REGION_IOU = 0.5  # defect regions of an image overlapping less than this (intersection over union) are said to differ


def compare(reference, candidate, images: list[Path], labels: np.ndarray | None, kind: str, batch: int = 8,
            progress=None) -> dict[str, Any]:
    """Run two engines (HeadOutput producers) on the same images; differences, AUROCs and a verdict."""
    from model.extract import load_batches
    from model.metrics import roc_auc

    if not images:
        raise InspectorError("verify: no images to compare on")
    size = tuple(reference.meta.input_size)
    if tuple(candidate.meta.input_size) != size:
        raise InspectorError(f"verify: the export takes {candidate.meta.input_size} but the checkpoint {size}; they are different models")
    if candidate.meta.framing != reference.meta.framing:
        raise InspectorError(f"verify: the export frames images otherwise than the checkpoint (region {candidate.meta.framing.roi} "
                             f"against {reference.meta.framing.roi}); they are different models")
    s_ref, s_got, t_ref, t_got = [], [], [], []
    ious: dict[int, float] | None = {} if getattr(reference.meta, "pixel_threshold", None) is not None else None
    map_abs = map_rel = 0.0
    map_broken = 0  # NaN or infinite map values of the export: they compare as no difference at all
    for idx, x, _, _ in load_batches(images, size, batch_size=batch, framing=reference.meta.framing):
        a, b = reference.infer(x), candidate.infer(x)
        s_ref.append(a.score)
        s_got.append(b.score)
        t_ref.append(getattr(a, "type_probs", None))
        t_got.append(getattr(b, "type_probs", None))
        if ious is not None:  # here, not after: every map of a big test set kept would take hundreds of MB
            ious.update(_region_overlaps(idx, a, b, reference.meta))
        finite = np.isfinite(b.amap)
        map_broken += int((~finite).sum())
        d = np.abs(a.amap - np.where(finite, b.amap, a.amap))  # differences of the finite values; the rest are counted
        map_abs = max(map_abs, float(d.max()))
        map_rel = max(map_rel, float((d / np.maximum(np.abs(a.amap), 1.0)).max()))
        if progress:
            progress(len(x))
    ref, got = np.concatenate(s_ref).astype(np.float64), np.concatenate(s_got).astype(np.float64)
    broken = ~np.isfinite(got)
    d = np.abs(ref - np.where(broken, ref, got))
    tol = TOLERANCES[kind]
    report: dict[str, Any] = {
        "kind": kind, "images": len(images), "batch": batch, "runtime": candidate.meta.runtime,
        "score_max_abs": float(d.max()), "score_max_rel": float((d / np.maximum(np.abs(ref), 1.0)).max()),
        "score_mean_abs": float(d.mean()), "map_max_abs": map_abs, "map_max_rel": map_rel,
        "auroc_torch": None, "auroc_export": None, "auroc_change": None, "tolerance": asdict(tol),
    }
    if labels is not None and labels.any() and not labels.all() and not broken.any():
        report["defects"] = int(labels.sum())
        pairs = report["defects"] * (len(labels) - report["defects"])
        report["tolerance"]["auroc"] = max(tol.auroc, SWAPPED_PAIRS / pairs)
        report["auroc_torch"], report["auroc_export"] = roc_auc(labels, ref), roc_auc(labels, got)
        report["auroc_change"] = report["auroc_export"] - report["auroc_torch"]
    failures = []
    if broken.any() or map_broken:  # float16 overflow: any comparison with NaN is false, so no tolerance below would catch it
        failures.append(f"{int(broken.sum())} scores and {map_broken} map values are NaN or infinity in the export")
    if tol.score_rel is not None and report["score_max_rel"] > tol.score_rel:
        failures.append(f"score relative difference {report['score_max_rel']:.2e} > {tol.score_rel:.0e}")
    if tol.map_rel is not None and report["map_max_rel"] > tol.map_rel:
        failures.append(f"map relative difference {report['map_max_rel']:.2e} > {tol.map_rel:.0e}")
    if report["auroc_change"] is not None:
        # AUROC moves in steps of 1/pairs: a change of exactly the tolerance (two swapped pairs) read 0.020000000000000018
        if abs(report["auroc_change"]) > report["tolerance"]["auroc"] + 1e-9:
            failures.append(f"image AUROC change {report['auroc_change']:+.4f} beyond ±{report['tolerance']['auroc']:.4g}")
    elif report["score_mean_abs"] > tol.drift:
        failures.append(f"mean score change {report['score_mean_abs']:.4f} > {tol.drift} (no defects in the data for an AUROC)")
    # a QA engineer's question: does any part get another verdict? Said, not judged (a part scored on the threshold
    # flips under any rounding, and the AUROC above is what a reduced precision must keep), but for a defect the
    # checkpoint fails clearly and the export passes: an INT8 export scoring defects lower by a constant kept its AUROC
    # and passed, letting 2 of 4 such defects through at the stored threshold
    thr = reference.meta.image_threshold
    def fails(scores: np.ndarray) -> np.ndarray:  # as decide() judges them: a NaN or infinite score fails
        return ~(np.isfinite(scores) & (scores < thr))

    differ = np.flatnonzero(fails(ref) != fails(got))
    clearly = ref - thr > (tol.score_rel * np.maximum(np.abs(ref), 1.0) if tol.score_rel is not None else tol.drift)
    escapes = np.flatnonzero(labels & fails(ref) & ~fails(got) & clearly) if labels is not None else np.array([], int)
    if escapes.size:
        failures.append(f"{escapes.size} defect image(s) the checkpoint fails pass in the export at threshold {thr:.6g} "
                        f"(first: {images[escapes[0]]}): new escapes")
    report["verdicts"] = {"threshold": thr, "differ": int(differ.size), "escapes": int(escapes.size),
                          "examples": [str(images[i]) for i in differ[:3]]}
    report["regions"] = _compare_regions(ious, reference.meta, images)
    report["types"] = _compare_types(t_ref, t_got, fails(ref) & fails(got), images, getattr(reference.meta, "class_names", ()), tol, failures)
    report["failures"] = failures
    report["passed"] = not failures
    return report


def _boxes(score: float, amap: np.ndarray, meta, config) -> np.ndarray:
    """The pixels of the map inside the boxes of the regions decide() finds in it (none for a PASS), don't-care pixels
    left out as `inspect` leaves them out: what a record shows."""
    from inspector.api import judged
    from inspector.decision import decide

    mask = np.zeros(amap.shape, bool)
    ignored = getattr(getattr(meta, "framing", None), "ignored", None)
    for r in decide(score, judged(amap, ignored), meta.image_threshold, meta.pixel_threshold, config)[1]:
        x, y, w, h = r.box
        mask[y : y + h, x : x + w] = True
    return mask


def _region_overlaps(idx: list[int], a, b, meta) -> dict[int, float]:
    """image index -> overlap (intersection over union) of the defect regions of the checkpoint (`a`) and the export
    (`b`), for the images of the batch that both fail."""
    from inspector.decision import DecisionConfig

    config, out = DecisionConfig(), {}
    for j, i in enumerate(idx):
        ra, rb = _boxes(float(a.score[j]), a.amap[j], meta, config), _boxes(float(b.score[j]), b.amap[j], meta, config)
        if ra.any() and rb.any():
            out[i] = int((ra & rb).sum()) / int((ra | rb).sum())
    return out


def _compare_regions(ious: dict[int, float] | None, meta, images: list[Path]) -> dict[str, Any] | None:
    """The failed images whose defect regions (boxes at the stored pixel threshold, as `inspect` finds them) the export
    places otherwise than the checkpoint: overlapping less than REGION_IOU. Said, not judged, as verdicts are: for FP16
    and INT8 nothing was said of regions, and an INT8 export whose region of a frayed edge grew from 39x25 px to the
    whole image passed without a word of it."""
    if ious is None:
        return None
    differ = [i for i, iou in ious.items() if iou < REGION_IOU]
    return {"pixel_threshold": float(meta.pixel_threshold), "failed_images": len(ious), "differ": len(differ),
            "min_overlap": round(min(ious.values()), 4) if ious else None,
            "examples": [f"{images[i]} (overlap {ious[i]:.2f})" for i in differ[:3]]}


def _compare_types(t_ref: list, t_got: list, failed: np.ndarray, images: list[Path], class_names, tol: Tolerance,
                   failures: list[str]) -> dict[str, Any] | None:
    """The defect-type probabilities of a model fitted with --labels: their largest difference (judged in float32), and
    the failed images that the export names another type than the checkpoint (said, as verdicts are). They went
    unchecked: an export naming every defect's type wrongly passed."""
    from inspector.decision import DecisionConfig, name_defect

    has_ref, has_got = t_ref[0] is not None, t_got[0] is not None
    if not has_ref and not has_got:
        return None
    if has_ref != has_got:
        failures.append(f"the {'checkpoint' if has_ref else 'export'} gives defect-type probabilities and the "
                        f"{'export' if has_ref else 'checkpoint'} none: they are different models")
        return None
    ref, got = (np.concatenate(t).astype(np.float64) for t in (t_ref, t_got))
    if ref.shape != got.shape:
        failures.append(f"the export gives {got.shape[1]} defect-type probabilities, the checkpoint {ref.shape[1]}: they are different models")
        return None
    broken = ~np.isfinite(got)
    d = np.abs(ref - np.where(broken, ref, got))
    config = DecisionConfig()
    named = [(name_defect(r, class_names, config)[0], name_defect(g, class_names, config)[0]) for r, g in zip(ref, got, strict=True)]
    differ = [i for i in np.flatnonzero(failed) if named[i][0] != named[i][1]]
    report = {"max_abs": float(d.max()) if d.size else 0.0, "failed_images": int(failed.sum()), "differ": len(differ),
              "examples": [f"{images[i]} ({named[i][0]} -> {named[i][1]})" for i in differ[:3]]}
    if broken.any():
        failures.append(f"{int(broken.sum())} defect-type probabilities are NaN or infinity in the export")
    elif tol.types_abs is not None and report["max_abs"] > tol.types_abs:
        failures.append(f"defect-type probability difference {report['max_abs']:.2e} > {tol.types_abs:.0e}")
    return report


def verify_samples(data: str | Path) -> list:
    """The images --verify compares on: DATA's test set (MVTec layout), else all its images; one-line error if none."""
    from exporters.calibration import as_option
    from model.data import load_dataset
    from model.images import FORMATS

    try:
        dataset = load_dataset(data, require_train=False)
    except InspectorError as exc:
        raise as_option(exc, Path(data), "--verify") from None
    samples = dataset.test or dataset.train
    if not samples:
        raise InspectorError(f"--verify {data}: no images found ({FORMATS})")
    return samples


def verify_export(checkpoint: str | Path, model: str | Path, data: str | Path, device: str = "cpu", batch: int = 8,
                  progress: BarFactory = silent) -> dict[str, Any]:
    """Compare the exported `model` with `checkpoint` on DATA (MVTec layout: its test set; else all its images)."""
    from inspector.engines import open_engine

    samples = verify_samples(data)
    reference, candidate = open_engine(checkpoint, "cpu"), open_engine(model, device, verifying=True)
    if candidate.meta.model_id != reference.meta.model_id:
        raise InspectorError(f"--verify: {model} was exported from another checkpoint (model id {candidate.meta.model_id}, "
                             f"checkpoint {reference.meta.model_id})")
    kind = candidate.meta.manifest["kind"]
    labels = np.array([s.is_defect for s in samples])
    bar = progress("verify", len(samples))
    try:
        return compare(reference, candidate, [s.path for s in samples], labels, kind, batch, bar.update)
    finally:
        bar.close()


def format_report(r: dict[str, Any]) -> list[str]:
    tol = r["tolerance"]
    lines = [f"verify {r['kind']} on {r['images']} images" + (f" ({r['defects']} defect)" if r.get("defects") else "")
             + f", batch {r['batch']}: torch vs {r['runtime']}",
             f"  score  max |diff| {r['score_max_abs']:.2e}  max rel {r['score_max_rel']:.2e}  mean |diff| {r['score_mean_abs']:.2e}"
             + (f"  (tolerance rel {tol['score_rel']:.0e})" if tol["score_rel"] is not None else ""),
             f"  map    max |diff| {r['map_max_abs']:.2e}  max rel {r['map_max_rel']:.2e}"
             + (f"  (tolerance rel {tol['map_rel']:.0e})" if tol["map_rel"] is not None else "")]
    if r["auroc_change"] is not None:
        lines.append(f"  image AUROC torch {r['auroc_torch']:.4f}  export {r['auroc_export']:.4f}  change {r['auroc_change']:+.4f}"
                     f"  (tolerance ±{tol['auroc']:.4g})")
    elif tol["score_rel"] is None:  # judged by the drift alone, as the docs say
        lines.append(f"  mean score change {r['score_mean_abs']:.4f}  (tolerance {tol['drift']:g}; no defect images for an AUROC)")
    g = r.get("regions")
    if g and g["failed_images"]:
        lines.append(f"  regions at pixel threshold {g['pixel_threshold']:.4f}: of {g['failed_images']} images both fail, "
                     + (f"{g['differ']} placed otherwise (first: {', '.join(g['examples'])})" if g["differ"] else "all placed alike"))
    t = r.get("types")
    if t:
        lines.append(f"  types  max |diff| {t['max_abs']:.2e}" + (f"  (tolerance {tol['types_abs']:.0e})" if tol.get("types_abs") is not None else "")
                     + f"; of {t['failed_images']} images both fail, "
                     + (f"{t['differ']} named another type (first: {', '.join(t['examples'])})" if t["differ"] else "all named alike"))
    v = r.get("verdicts")
    if v:
        lines.append(f"  verdicts at threshold {v['threshold']:.4f}: " + (f"{v['differ']} of {r['images']} differ (first: {', '.join(v['examples'])})"
                                                                          if v["differ"] else f"all {r['images']} agree"))
    lines.append("  PASS" if r["passed"] else "  FAIL: " + "; ".join(r["failures"]))
    return lines
