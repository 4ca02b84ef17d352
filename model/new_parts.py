"""How a model's fit settings do on parts they have never seen: cross-validation over the training parts.

A test set's good images may be other captures of training parts (model/overlap.py), and then its metrics
flatter the model. Here the training images are grouped into parts (captures of one part stay together),
the parts are dealt into folds, and for each fold a model is fitted with the same settings on the other
folds' images; the held-out good images (new parts, every one) are scored against the test set's defect
images. Only the anomaly model is refitted: a defect-type head is not part of it.
"""

from __future__ import annotations

import time
from dataclasses import fields, replace
from typing import Any

import numpy as np
import torch

from model.calibration import Policy
from model.data import Dataset, Sample
from model.defect_learning import DefectLearning
from model.errors import InspectorError
from model.extract import load_batches
from model.fit import MIN_GOOD, FitOptions, fit
from model.framing import Framing
from model.hashing import sha256_file
from model.metrics import fpr_at_recall, roc_auc, tpr_at_fpr
from model.net import InspectorNet
from model.progress import BarFactory, silent

CHECKED_RATES = (0.5, 0.2, 0.1, 0.05)  # false-alarm rates a good-only calibration is checked at (1 % is in the policy)


def options_from_manifest(options: dict[str, Any] | None, model: str) -> FitOptions:
    """The FitOptions a checkpoint was fitted with (its manifest's `options`)."""
    if not options:
        # an export made before exports carried their checkpoint's options: export it again, or give that checkpoint
        raise InspectorError(f"model {model}: its manifest records no fit options, which refitting needs; give the checkpoint "
                             "`inspector fit` wrote, or export it again with this version")
    known = {f.name for f in fields(FitOptions)}
    kw = {k: v for k, v in options.items() if k in known}
    kw.setdefault("normalize_input", False)  # checkpoints from before input standardisation were fitted without it,
    kw.setdefault("position_norm", False)  # and those from before position normalisation without that
    kw.setdefault("peers", 0)  # checkpoints from before --peers were fitted without it
    kw.setdefault("peer_position", False)  # nor did those from before peer position statistics use them
    kw.setdefault("position_map", False)  # nor those from before the position-standardised map
    kw.setdefault("neighbours", 1)  # and those from before --neighbours measured against the nearest bank patch only
    for name in ("layers", "augment", "roi", "ignore"):
        if kw.get(name) is not None:
            kw[name] = tuple(kw[name])
    if isinstance(kw.get("defects"), dict):
        d = dict(kw["defects"])
        d["types"] = tuple(d.get("types", ()))
        d.setdefault("blend", None)  # before --blend, the weight was always chosen on generated validation defects
        d.setdefault("head", "patch")  # and before --synth-head, the branch was a per-patch classifier
        kw["defects"] = DefectLearning(**{k: v for k, v in d.items() if k in {f.name for f in fields(DefectLearning)}})
    # the refits have no defects to calibrate on: they keep a false-alarm target, and an escape target becomes
    # the default false-alarm one
    policy = kw.pop("policy", None)
    if policy and policy.get("kind") == "far":
        kw["policy"] = Policy(**policy)
    return FitOptions(**kw)


def check_folds(folds: int) -> None:
    if folds < 2:
        raise InspectorError(f"--new-parts {folds}: give at least 2 folds (e.g. 5)")


def _most_kept(n_images: int, folds: int) -> int:
    """The most images every refit can keep: some fold holds at least n/folds of them."""
    return n_images - -(-n_images // folds)


def _keep_more(n_images: int, folds: int, most_folds: int) -> str:
    """What lets every refit keep MIN_GOOD images: more folds (smaller ones; "fewer folds" was said, which keeps fewer),
    at most `most_folds` (one per part), or more images."""
    more = next((f for f in range(folds + 1, most_folds + 1) if _most_kept(n_images, f) >= MIN_GOOD), None)
    # and no fewer images than folds: each fold needs a part of its own
    need = next(n for n in range(max(n_images, folds), n_images + 10 * MIN_GOOD * folds) if _most_kept(n, folds) >= MIN_GOOD)
    return (f"--new-parts {more} (smaller folds, each refit keeps more), or " if more else "") + \
        f"at least {need} images in train/good for --new-parts {folds}"


def check_training_images(n_images: int, folds: int, where: object) -> None:
    """Refuse, before any work, a request no dealing of `n_images` training images into `folds` folds can meet: some fold
    holds at least n/folds of them, so some refit keeps at most the rest, and a refit needs MIN_GOOD. Found only
    after the test images were scored, it was a `skipped` beside exit 0. (new_parts_report checks the exact count.)"""
    most = _most_kept(n_images, folds)
    if folds > n_images and _most_kept(n_images, n_images) >= MIN_GOOD:
        # each fold needs a part of its own: found only once the parts were told apart, after scoring, beside exit 0
        raise InspectorError(f"data {where}: --new-parts {folds} deals the training parts into {folds} folds, and there are "
                             f"{n_images} training images, so some fold would hold none; give --new-parts {n_images} or fewer "
                             "(captures of one part count as one)")
    if most < MIN_GOOD:
        raise InspectorError(f"data {where}: --new-parts {folds} over {n_images} training image(s) leaves a refit at most {most} of "
                             f"them, and fitting needs at least {MIN_GOOD}; give {_keep_more(n_images, folds, n_images)}")


def part_folds(parts: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """A fold per image [N]: whole parts are dealt round-robin, in a seeded random order, into `folds` folds."""
    ids = np.unique(parts)
    order = np.random.default_rng(seed).permutation(ids)
    fold_of = {int(p): i % folds for i, p in enumerate(order)}
    return np.array([fold_of[int(p)] for p in parts])


@torch.no_grad()
def _scores(net: InspectorNet, samples: list[Sample]) -> np.ndarray:
    out = []
    for _, batch, _, _ in load_batches([s.path for s in samples], tuple(net.config.input_size), batch_size=16, framing=net.config.framing):
        out.append(net(torch.from_numpy(batch))[0].reshape(-1).numpy())
    return np.concatenate(out)


def _prefixed(progress: BarFactory, prefix: str) -> BarFactory:
    return lambda desc, total: progress(prefix + desc, total)


def new_parts_report(dataset: Dataset, options: FitOptions, folds: int = 5, progress: BarFactory = silent,
                     parts: np.ndarray | None = None, framing: Framing | None = None) -> dict[str, Any]:
    """Image-level metrics of `options` on held-out training parts against the test defects, per fold and
    averaged over folds, and the false-alarm and escape rates at each refit's own threshold (calibrated, with
    no defects to hand, for a false-alarm target). `parts` (a part id per training image) defaults to `model.overlap.find_parts`.
    `framing`: the model's own (its region, --locate template and --ignore mask), which every refit then uses as it is;
    made afresh, a fold without the first training image would place the region on another and judge another view,
    and an --ignore mask would be drawn again from files that may have changed or moved since."""
    defects = [s for s in dataset.test if s.is_defect]
    if not defects:
        raise InspectorError(f"data {dataset.root}: the new-parts check scores held-out good parts against test/<defect> images; there are none")
    check_folds(folds)
    if parts is None:
        from model.overlap import find_parts

        parts = find_parts([s.path for s in dataset.train], progress, framing or Framing(options.roi))  # unlocated without a model's
    n_parts = len(np.unique(parts))
    if n_parts < folds:
        raise InspectorError(f"data {dataset.root}: {n_parts} distinct part(s) among the training images; --new-parts {folds} needs at least {folds} (fewer folds, or more parts)")
    fold_of = part_folds(parts, folds, options.seed)
    digests = [sha256_file(s.path) for s in dataset.train]  # each file read once; fit counts byte-identical copies once
    kept = min(len({d for d, f in zip(digests, fold_of) if f != k}) for k in range(folds))
    if kept < MIN_GOOD:
        raise InspectorError(f"data {dataset.root}: a refit without a fold's parts keeps {kept} good image(s), and fitting needs at least "
                             f"{MIN_GOOD}; give {_keep_more(len(set(digests)), folds, n_parts)}")
    if options.position_norm:
        # the score is then the memory bank's and the global branch's alone: a learnt branch would only shape
        # the refits' maps, which are never looked at, and cost minutes per fold
        options = replace(options, defects=DefectLearning())
    t0 = time.perf_counter()
    rows = []
    bar = progress("new parts", folds)
    for k in range(folds):
        train = [s for s, f in zip(dataset.train, fold_of) if f != k]
        held = [s for s, f in zip(dataset.train, fold_of) if f == k]
        net, fitted = fit(Dataset(dataset.root, train, []), options, _prefixed(progress, f"new parts {k + 1}/{folds}: "), framing=framing)
        s = _scores(net.eval(), held + defects)
        y = np.r_[np.zeros(len(held), bool), np.ones(len(defects), bool)]
        failed = s >= fitted.thresholds["image"]  # the verdict rule (inspector.decision)
        policy = fitted.options["policy"]
        calibration = np.asarray(fitted.scores["good"])  # the refit's training images, as it calibrates on them
        rows.append({"image_auroc": roc_auc(y, s), "fpr_at_recall_99": fpr_at_recall(y, s, 0.99),
                     "tpr_at_fpr_1": tpr_at_fpr(y, s, 0.01),
                     "false_alarm_rate": float(failed[~y].mean()), "escape_rate": float(1.0 - failed[y].mean()),
                     "observed": [float((s[~y] >= np.quantile(calibration, 1.0 - r)).mean()) for r in CHECKED_RATES]})
        bar.update(1)
    bar.close()
    mean = {key: np.round(np.mean([r[key] for r in rows], axis=0), 4).tolist() for key in rows[0]}
    return {"folds": folds, "parts": n_parts, "n_good": len(dataset.train), "n_defect": len(defects),
            **{key: mean[key] for key in ("image_auroc", "fpr_at_recall_99", "tpr_at_fpr_1")},
            "image_auroc_per_fold": [round(float(r["image_auroc"]), 4) for r in rows],
            # what a station fitted from good images alone gets on new parts at its own calibrated threshold
            "good_only_threshold": {"policy": policy, "false_alarm_rate": mean["false_alarm_rate"],
                                    "false_alarm_rate_per_fold": [round(r["false_alarm_rate"], 4) for r in rows],
                                    "escape_rate": mean["escape_rate"],
                                    # do the calibration scores stand for new parts? thresholds at their quantiles,
                                    # meant to fail these shares of good parts, and what they failed of the new ones
                                    "check": {"intended": list(CHECKED_RATES), "observed": mean["observed"]}},
            "seconds": round(time.perf_counter() - t0, 1)}
