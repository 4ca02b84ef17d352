"""Scoring labelled samples and computing the evaluation report."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import cv2
import numpy as np
import torch

from model.data import Sample
from model.errors import InspectorError, first_few
from model.extract import load_batches
from model.framing import Framing, Roi, crop
from model.images import read_image, read_mask, upright_size
from model.metrics import aupro, average_precision, f1_max, fpr_at_recall, precision_recall_f1, roc_auc, tpr_at_fpr
from model.progress import BarFactory, silent
from model.quality import quality_stats


@dataclass
class Scored:
    """Scores [N], maps [N, h, w] at the model input size, and masks (same shape) when asked for."""

    scores: np.ndarray
    maps: np.ndarray
    masks: np.ndarray | None
    ms_per_image: list[float]
    known: np.ndarray | None = None  # bool [N]: whose pixels are known (good images, defects with a mask); None: all
    inspected: np.ndarray | None = None  # bool [h, w]: the pixels the model judges (not --ignore's); None: all
    quality: np.ndarray | None = None  # [N, 4] model.quality.quality_stats of each image as the model saw it
    empty: np.ndarray | None = None  # bool [N]: defects whose mask marks no pixel at this size (left out of `known`); None: none
    framed: list[str | None] | None = None  # each image's Framing.located warning, as inspection gives it (edge=True)
    shapes: list[tuple[int, int]] | None = None  # each image's (H, W), for inspection's size warning

    @cached_property
    def pixels(self) -> tuple[np.ndarray, np.ndarray] | None:
        """`pixels_of` all images, for pixel metrics and thresholds; None also without a known defect pixel.
        Cached: leaving images out copies the maps, and `eval` asks twice."""
        pixels = self.pixels_of()
        return pixels if pixels is not None and pixels[0].any() else None

    def images_of(self, among: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(masks, maps) [n, h, w] of the images (of `among`, bool [N], when given) whose pixels are known: a defect
        without a mask would count its defect pixels as normal. None without masks."""
        if self.masks is None:
            return None
        keep = self.known
        if among is not None:
            keep = among if keep is None else among & keep
        return (self.masks, self.maps) if keep is None or keep.all() else (self.masks[keep], self.maps[keep])

    def pixels_of(self, among: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """`images_of`, with only the pixels the model judges ([n, k] where --ignore hides some): a defect under a
        don't-care region is not asked for, and its normal pixels are not normal by merit."""
        images = self.images_of(among)
        if images is None or self.inspected is None:
            return images
        return images[0][:, self.inspected], images[1][:, self.inspected]


def mask_at(sample: Sample, image_shape: tuple[int, int], size: tuple[int, int], box: Roi | None = None) -> np.ndarray:
    """A sample's defect mask over the region `box` the model saw (None: the whole image) at the model input size (all
    False for good images or without a mask)."""
    if sample.mask_path is None:
        return np.zeros(size, dtype=bool)
    mask = crop(read_mask(sample.mask_path, image_shape), box, str(sample.mask_path)).astype(np.uint8)
    return cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST) > 0


def check_masks(samples: list[Sample], root: object) -> None:
    """Every ground-truth mask decoded and held against its image's size before any scoring, and all that cannot be
    used named in one line: read while scoring, the first one stopped eval there (minutes in) and named itself alone,
    and the next one the following run."""
    bad, n = [], 0
    for s in samples:
        if s.mask_path is None:
            continue
        n += 1
        try:
            mask, size = read_mask(s.mask_path, None), upright_size(s.path)  # (w, h) by the header, upright
            if size is None or mask.shape != size[::-1]:  # the header can miss a PNG's late EXIF: decoding tells for sure
                read_mask(s.mask_path, read_image(s.path).shape[:2])
        except InspectorError as e:
            bad.append(str(e))
    if bad:
        raise InspectorError(f"data {root}: {len(bad)} of {n} ground_truth masks cannot be used: {first_few(bad)}; "
                             f"fix or remove {'it' if len(bad) == 1 else 'them'} (a defect image without its mask is left "
                             "out of the pixel metrics)")


def known_pixels(samples: list[Sample]) -> np.ndarray:
    """bool [N]: whether each sample's defect pixels are known (a good image, or a defect with its mask)."""
    return np.array([not s.is_defect or s.mask_path is not None for s in samples])


def mask_coverage(samples: list[Sample], masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(known, empty), bool [N]: `known_pixels`, less the defects whose mask [N, h, w] at the model's size marks no pixel
    (drawn blank, or a defect too thin to survive the resize), which are `empty`. Such a defect's own pixels read as
    normal: a model that found it was charged false alarms on it, and eval said nothing."""
    labelled = known_pixels(samples)
    defect = np.array([s.is_defect for s in samples], dtype=bool)
    empty = defect & labelled & ~masks.reshape(len(masks), -1).any(axis=1)
    return labelled & ~empty, empty


@torch.no_grad()
def score_samples(
    predict, samples: list[Sample], size: tuple[int, int] | None = None, progress: BarFactory = silent, with_masks: bool = False,
    batch_size: int = 1, framing: Framing | None = None,
) -> Scored:
    """Run `predict` (a torch module or engine: batch -> (scores, maps)) on the samples, timing each batch. `size`
    and `framing` are the engine's input size and framing; without a size, a torch module's own are used.

    Batch 1 (the default) gives the latency `eval` reports; `fit` calibrates in larger batches (its times are
    per image, amortised)."""
    if size is None:
        size, framing = tuple(predict.config.input_size), predict.config.framing
    scores, maps, masks, times, quality, framed, shapes = [], [], [], [], [], [], []
    bar = progress("scoring", len(samples))
    # edge: as inspection locates (fit's training images stop at any warning, so load_batches does not ask by default)
    for idx, batch, rgbs, located in load_batches([s.path for s in samples], size, batch_size=batch_size, framing=framing, edge=True):
        quality.append(quality_stats(batch))
        framed.extend(warning for _, warning in located)
        shapes.extend(rgb.shape[:2] for rgb in rgbs)
        t = time.perf_counter()
        out = predict(torch.from_numpy(batch)) if isinstance(predict, torch.nn.Module) else predict(batch)
        s, m = (np.asarray(v.numpy() if hasattr(v, "numpy") else v) for v in out[:2])
        times.append((time.perf_counter() - t) * 1000.0 / len(idx))
        scores.extend(s.reshape(-1))
        maps.extend(m.reshape(-1, *size).astype(np.float32))
        if with_masks:
            masks.extend(mask_at(samples[i], rgb.shape[:2], size, box) for i, rgb, (box, _) in zip(idx, rgbs, located))
        bar.update(len(idx))
    bar.close()
    scores_, maps_ = np.asarray(scores, dtype=np.float64), np.stack(maps)
    broken = ~(np.isfinite(scores_) & np.isfinite(maps_.reshape(len(maps_), -1)).all(axis=1))
    if broken.any():  # every metric and threshold taken over them would mean nothing (a NaN score compares as neither)
        raise InspectorError(f"the model scored {int(broken.sum())} of {len(samples)} images as NaN or infinity (first: "
                             f"{samples[int(np.argmax(broken))].path}); its numbers cannot be trusted: refit, or export in float32 "
                             "(float16 can overflow)")
    inspected = None if framing is None or framing.ignored is None else ~framing.ignored
    masks_ = np.stack(masks) if with_masks else None
    known, empty = mask_coverage(samples, masks_) if with_masks else (None, None)
    return Scored(scores_, maps_, masks_, times, known, inspected, np.concatenate(quality), empty, framed, shapes)


def _r(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else round(float(x), 4)


def metrics_report(samples: list[Sample], scored: Scored) -> dict[str, Any]:
    """Image- and pixel-level metrics for scored labelled samples (the `inspector eval --json` object)."""
    labels = np.array([s.is_defect for s in samples])
    types = np.array([s.defect_type for s in samples])
    y, s = labels, scored.scores
    report: dict[str, Any] = {
        "n_good": int((~y).sum()),
        "n_defect": int(y.sum()),
        "image_auroc": _r(roc_auc(y, s)),
        "image_ap": _r(average_precision(y, s)),
        "f1_max": _r(f1_max(y, s)[0]) if y.any() else None,
        "fpr_at_recall_99": _r(fpr_at_recall(y, s, 0.99)) if y.any() else None,
        "fpr_at_recall_100": _r(fpr_at_recall(y, s, 1.0)) if y.any() else None,
        "tpr_at_fpr_1": _r(tpr_at_fpr(y, s, 0.01)) if y.any() else None,
        "per_type_auroc": {t: _r(roc_auc(np.r_[np.zeros((~y).sum()), np.ones((types == t).sum())], np.r_[s[~y], s[types == t]]))
                           for t in sorted(set(types[y]))},
    }
    pixels = scored.pixels
    if pixels is not None:
        masks, maps = pixels
        report["pixel_auroc"] = _r(roc_auc(masks.ravel(), maps.ravel()))
        report["pixel_ap"] = _r(average_precision(masks.ravel(), maps.ravel()))
        report["aupro"] = _r(aupro(*scored.images_of(), 0.3, scored.inspected))
    else:
        report["pixel_auroc"] = report["pixel_ap"] = report["aupro"] = None
    notes = []
    if scored.known is not None:  # left out of the pixel metrics
        empty = scored.empty if scored.empty is not None else np.zeros(len(samples), dtype=bool)
        report["defects_without_masks"] = int((~scored.known & ~empty).sum())
        if empty.any():
            report["defects_with_empty_masks"] = int(empty.sum())
            notes.append(empty_masks_note([samples[i] for i in np.flatnonzero(empty)], scored.masks.shape[1:]))
    report["ms_per_image"] = round(statistics.median(scored.ms_per_image), 2) if scored.ms_per_image else None
    notes += resolution_notes(int((~y).sum()), int(y.sum()))
    if notes:
        report["notes"] = notes
    return report


def empty_masks_note(samples: list[Sample], size: tuple[int, int]) -> str:
    """The note on defects whose mask marks no pixel the model sees: drawn blank (fix the mask), or marking pixels only
    outside the model's region or too few to outlast the resize to `size` (a larger --size keeps a thin defect)."""
    blank = []
    for s in samples:
        try:
            blank.append(not read_mask(s.mask_path, None).any())
        except InspectorError:
            blank.append(False)  # read once already: a file changed since is not for this note to say
    drawn = [s for s, b in zip(samples, blank, strict=True) if not b]
    parts = []
    if len(drawn) < len(samples):
        parts.append(f"{len(samples) - len(drawn)} drawn blank (first: {next(s for s, b in zip(samples, blank) if b).mask_path}): "
                     "draw the defect in it")
    if drawn:
        parts.append(f"{len(drawn)} whose defect pixels lie outside the model's region or are too thin to outlast the resize to its "
                     f"{size[1]}x{size[0]} px input (first: {drawn[0].mask_path}): a larger --size keeps a thin defect")
    return (f"{len(samples)} defect image(s) have a ground_truth mask that marks no pixel the model sees, and are left out of the "
            f"pixel metrics as an image without a mask is (their defect pixels would count as normal ones): {'; '.join(parts)}")


def resolution_notes(n_good: int, n_defect: int) -> list[str]:
    """What a small test set cannot measure: 99 % recall takes 100 defect images, a 1 % false-alarm rate 100 good ones."""
    notes = []
    if 0 < n_defect < 100:
        notes.append(f"fpr_at_recall_99: {n_defect} defect images cannot resolve 99% recall (that takes 100): "
                     "it is the false-alarm rate at 100% recall here")
    if 0 < n_good < 100 and n_defect:
        notes.append(f"tpr_at_fpr_1: {n_good} good images cannot resolve a 1% false-alarm rate (that takes 100): "
                     "it is the detection rate at no false alarm here")
    return notes


FRAMING_EXAMPLES = 3  # files named for each kind of framing warning


def framing_report(labels: list[bool], files: list[str], kinds: list[list[str]], checked: list[str]) -> dict[str, Any]:
    """How many labelled test images (`labels`: defect or not) inspection would warn about for how the part lies in
    the frame (`kinds`: each image's warnings' kinds: size, locate, edge), by kind, with the first few files of each;
    `checked`: the kinds this model can warn of (only a --locate model locates a part), as image_quality's are."""
    warned = [(f, d) for f, ks, d in zip(files, kinds, labels, strict=True) if ks]
    by_kind: dict[str, list[str]] = {}
    for f, ks in zip(files, kinds, strict=True):
        for k in dict.fromkeys(ks):
            by_kind.setdefault(k, []).append(f)
    # the first few of each kind: a hundred size warnings named first hid the one part found past the frame's edge
    return {"checked": checked, "good": sum(not d for _, d in warned), "defect": sum(d for _, d in warned),
            "kinds": {k: len(fs) for k, fs in by_kind.items()},
            "examples": [{"file": f, "kind": k} for k, fs in by_kind.items() for f in fs[:FRAMING_EXAMPLES]]}


# what each kind says, in the note
FRAMING_KINDS = {"size": "of a size unlike the training images'", "locate": "whose part was found only weakly",
                 "edge": "whose part's region reaches past the frame's edge"}


def framing_note(framing: dict[str, Any], n: int) -> str | None:
    """The note on `framing_report`'s warned images among `n` test images; None where there are none."""
    warned = framing["good"] + framing["defect"]
    if not warned:
        return None
    return (f"framing: inspection would warn about {warned} of the {n} test images ({framing['good']} good, {framing['defect']} "
            f"defective): {', '.join(f'{c} {FRAMING_KINDS.get(k, k)} ({k})' for k, c in framing['kinds'].items())}; "
            f"first: {framing['examples'][0]['file']}; check how the parts lie in those frames and the camera's framing, or fit "
            "on images like them")


def threshold_report(samples: list[Sample], scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """How the stored threshold does on these samples: false alarms and escapes."""
    y = np.array([s.is_defect for s in samples])
    fail = scores >= threshold
    return {
        "threshold": round(float(threshold), 6),
        "false_alarm_rate": _r(fail[~y].mean()) if (~y).any() else None,
        "escape_rate": _r((~fail[y]).mean()) if y.any() else None,
        "false_alarms": int(fail[~y].sum()), "n_good": int((~y).sum()),
        "escapes": int((~fail[y]).sum()), "n_defect": int(y.sum()),
    }


def pixel_threshold_report(masks: np.ndarray, maps: np.ndarray, threshold: float) -> dict[str, Any]:
    """How the stored pixel threshold (defect regions) does on these images: pixel precision, recall, F1."""
    return {"threshold": round(float(threshold), 6), **{k: _r(v) for k, v in precision_recall_f1(masks, maps >= threshold).items()}}


def overlap_report(train: list[Sample], test: list[Sample], scored: Scored, twin_of: np.ndarray) -> dict[str, Any]:
    """Test images that are other captures of training images (`twin_of`, from model/overlap.py), and image and
    pixel AUROC without them: a stored capture of the same part scores low all over, so both flatter."""
    from model.overlap import TWIN_RANK, TWIN_RATIO

    twin, y = twin_of >= 0, np.array([s.is_defect for s in test])
    rest = ~twin
    # roc_auc is NaN (-> None) where the rest lacks good or defect images, or normal or defect pixels
    auroc = roc_auc(y[rest], scored.scores[rest]) if twin.any() else None
    pixels = scored.pixels_of(rest) if twin.any() else None
    pixel = roc_auc(pixels[0].ravel(), pixels[1].ravel()) if pixels is not None else None
    return {"rule": f"nearest training image < {TWIN_RATIO} x the {TWIN_RANK}th nearest", "good_twins": int((twin & ~y).sum()),
            "defect_twins": int((twin & y).sum()), "image_auroc_without_twins": _r(auroc), "pixel_auroc_without_twins": _r(pixel),
            "pairs": [{"test": str(test[i].path), "type": test[i].defect_type, "train": str(train[twin_of[i]].path)}
                      for i in np.flatnonzero(twin)]}
