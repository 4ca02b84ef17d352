"""Does learning from generated defects help? One dataset, one run, one table.

Variants, each fitted on the dataset's good training images and scored on its labelled test images:
good-only; + pixel-space synthesis learnt by the whole-image branch, and by the per-patch classifier (at
the fixed weight and at the one generated defects choose); + pixel-space synthesis and feature-space
(flow) generation; + Gaussian feature noise (the common baseline); the last three per patch. Fitting never
sees the test images. The good-only fit and the test images' backbone features are computed once and
shared: variants differ only in the learnt branch.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace

import numpy as np
import torch

from model.data import Dataset
from model.defect_learning import DefectLearning
from model.errors import InspectorError, first_few
from model.evaluate import Scored, mask_at, mask_coverage, metrics_report
from model.extract import load_batches
from model.fit import FitOptions, finish_fit, fit_good_only
from model.images import read_image, read_mask
from model.net import InspectorNet
from model.progress import BarFactory, silent

METRICS = ("image_auroc", "pixel_auroc", "pixel_ap", "aupro", "fpr_at_recall_99")


def variants(synth: int) -> dict[str, DefectLearning]:
    return {
        "good only": DefectLearning(),
        f"+ pixel synthesis ({synth} images), whole-image branch": DefectLearning(synth=synth),
        "+ pixel synthesis, per-patch branch": DefectLearning(synth=synth, head="patch"),
        "+ pixel synthesis, per-patch, blend chosen on generated defects": DefectLearning(synth=synth, head="patch", blend=None),
        "+ pixel synthesis + feature flow, per-patch": DefectLearning(synth=synth, head="patch", feature_synth=True),
        "+ Gaussian feature noise, per-patch": DefectLearning(noise=True, head="patch"),
    }


@torch.no_grad()
def _test_features(net: InspectorNet, dataset: Dataset, progress: BarFactory) -> tuple[list[list[torch.Tensor]], np.ndarray]:
    size = tuple(net.config.input_size)
    feats, masks = [], []
    bar = progress("test features", len(dataset.test))
    framing = net.config.framing
    for idx, batch, rgbs, located in load_batches([s.path for s in dataset.test], size, batch_size=8, framing=framing):
        feats.append(net.features(torch.from_numpy(batch)))
        masks += [mask_at(dataset.test[i], rgb.shape[:2], size, box) for i, rgb, (box, _) in zip(idx, rgbs, located)]
        bar.update(len(idx))
    bar.close()
    return feats, np.stack(masks)


def check_test_images(dataset: Dataset, progress: BarFactory = silent) -> None:
    """Every test image decodes and every mask matches its image, all named in one line: read only after the
    good-only fit, the first bad one stopped the ablation minutes in, and each next one on the following run."""
    bad = []
    bar = progress("checking test images", len(dataset.test))
    for sample in dataset.test:
        try:
            rgb = read_image(sample.path)
            if sample.mask_path is not None:
                read_mask(sample.mask_path, rgb.shape[:2])
        except InspectorError as e:
            bad.append(str(e))
        bar.update(1)
    bar.close()
    if bad:
        raise InspectorError(f"data {dataset.root}: {len(bad)} test image(s) or mask(s) cannot be used: {first_few(bad)}")


def run_ablation(dataset: Dataset, options: FitOptions, synth: int = 300, progress: BarFactory = silent) -> list[dict]:
    """Rows of {variant, metrics..., fit_seconds, alpha} for each variant."""
    if not dataset.test or not any(s.is_defect for s in dataset.test) or all(s.is_defect for s in dataset.test):
        # masks are not needed: without them the pixel columns are empty (said "with masks", and ran without)
        raise InspectorError(f"data {dataset.root}: the ablation needs test/good and test/<defect> folders (with ground_truth "
                             "masks for the pixel metrics)")
    if synth < 1:
        raise InspectorError(f"--synth {synth}: the ablation needs synthetic defect images (e.g. --synth 300)")
    check_test_images(dataset, progress)
    train_only = copy.copy(dataset)
    train_only.test = []
    t0 = time.perf_counter()
    base, good = fit_good_only(train_only, options, progress, keep_images=True)
    base_seconds = time.perf_counter() - t0
    feats, masks = _test_features(base, dataset, progress)
    rows = []
    known, empty = mask_coverage(dataset.test, masks)
    for name, learning in variants(synth).items():
        t = time.perf_counter()
        net, report = finish_fit(copy.deepcopy(base), good, train_only, replace(options, defects=learning), progress)
        fit_seconds = base_seconds + time.perf_counter() - t
        with torch.no_grad():
            out = [net.head(f) for f in feats]
        scored = Scored(torch.cat([s for s, _ in out]).double().numpy(), torch.cat([m for _, m in out]).numpy(), masks, [], known, empty=empty)
        metrics = metrics_report(dataset.test, scored)
        rows.append({"variant": name, **{k: metrics.get(k) for k in METRICS},
                     "fit_seconds": round(fit_seconds, 1),
                     "alpha": (report.training.get("generated_defects") or {}).get("alpha")})
    return rows
