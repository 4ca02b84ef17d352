"""Defect-type evaluation for `inspector eval`: metrics of a model's type head on labelled test images, and
k-shot learning curves (`--shots K --seeds N`, or `--shots all` with cross-validation) that fit the type
head on K examples per type from DATA and score it on the rest.

MODEL may be a checkpoint (its anomaly map gives the region to pool) or, for data with no good images
(no normal reference, e.g. NEU), a backbone name (input size from --size): the type head then pools
the whole image.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from inspector.cli import one_line
from model.errors import InspectorError
from model.label_names import UNKNOWN, type_words


def add_eval_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("defect types")
    g.add_argument("--shots", default=None, metavar="K|all",
                   help="fit the type head on K labelled examples per type from DATA (<type>/ folders, or an MVTec AD layout's "
                        "test/<type>) and score the rest, so each type needs K+1 images ('all': cross-validation); MODEL may "
                        "be a backbone name, e.g. efficientnet-lite0")
    g.add_argument("--seeds", type=int, default=None, help="--shots: repetitions with different example draws (default 5)")
    g.add_argument("--folds", type=int, default=None, help="--shots all: cross-validation folds (default 10)")
    g.add_argument("--holdout", action="store_true", help="--shots: also hold each type out of fitting and count how often it comes back `unknown`")


def type_metrics(true: list[str], pred: list[str], classes: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 over the known types, per-type recall, and the confusion matrix {true: {pred: n}}."""
    t, p = np.array(true, dtype=str), np.array(pred, dtype=str)  # empty, NumPy 1 made them float, and `t == c` one False
    f1s, recall = [], {}
    for c in classes:
        tp = int(((t == c) & (p == c)).sum())
        fp, fn = int(((t != c) & (p == c)).sum()), int(((t == c) & (p != c)).sum())
        if tp + fn:
            f1s.append(2 * tp / max(2 * tp + fp + fn, 1))
            recall[c] = round(tp / (tp + fn), 4)
    cols = [*classes, UNKNOWN]
    confusion = {c: {q: int(((t == c) & (p == q)).sum()) for q in cols} for c in classes if (t == c).any()}
    return {"type_accuracy": round(float((t == p).mean()), 4) if t.size else None,
            "type_macro_f1": round(float(np.mean(f1s)), 4) if f1s else None,
            "type_unknown_rate": round(float((p == UNKNOWN).mean()), 4) if t.size else None,
            "type_recall": recall, "type_confusion": confusion}


def predictions(probs: np.ndarray, classes: list[str], cutoff: float = 0.5) -> tuple[list[str], list[str]]:
    """Type probabilities [N, K + 1] -> (closed-set names: argmax over known types, open-set names: or `unknown`)."""
    closed = [classes[i] for i in probs[:, :-1].argmax(axis=1)]
    return closed, [UNKNOWN if u >= cutoff else c for c, u in zip(closed, probs[:, -1], strict=True)]


def report_from_probs(true: list[str], probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """The --json fields for a model that names types: closed-set accuracy/F1, and with `unknown` counted."""
    closed, open_ = predictions(probs, classes)
    # a test set's `Crack/` or `fray_/` is the model's crack or fray, as fit reads type names; all were `types_not_known`
    as_named = {type_words(c): c for c in classes}
    true = [c if c in classes else as_named.get(type_words(c), c) for c in true]
    known = [i for i, c in enumerate(true) if c in classes]
    out = type_metrics([true[i] for i in known], [closed[i] for i in known], classes)
    opened = type_metrics([true[i] for i in known], [open_[i] for i in known], classes)
    out["type_accuracy_open_set"], out["type_unknown_rate"] = opened["type_accuracy"], opened["type_unknown_rate"]
    out["type_confusion"] = opened["type_confusion"]
    novel = [open_[i] for i, c in enumerate(true) if c not in classes]
    out["type_classes"], out["type_images_scored"] = list(classes), len(known)
    if novel:
        out["novel_types_unknown_rate"] = round(float(np.mean([p == UNKNOWN for p in novel])), 4)
        out["types_not_known"] = dict(Counter(c for c in true if c not in classes))  # left out of the metrics above, and said
    return out


# -- k-shot learning curves -----------------------------------------------------------------------------
def _open_net(model: str, size: int) -> tuple[Any, dict[str, Any]]:
    """-> (the net, its checkpoint's `types` section: {} for a backbone name or a checkpoint without types)."""
    from model.checkpoint import load_checkpoint
    from model.fit import check_input_size
    from model.net import InspectorNet, NetConfig

    if Path(model).exists():
        net, manifest = load_checkpoint(model)
        return net, manifest.get("types") or {}
    if not model.startswith("clip:") and ("/" in model or model.endswith(".ckpt")):  # "unknown backbone" named no typo'd path
        raise InspectorError(f"--shots on {model}: no such checkpoint folder; give one written by `inspector fit`, or a backbone "
                             "name (e.g. efficientnet-lite0)")
    check_input_size(size)
    return InspectorNet(NetConfig(backbone=model, input_size=(size, size))).eval(), {}


def fitted_options(recorded: dict[str, Any]):
    """The type options a checkpoint was fitted with (its manifest's `types.options`), so that the curve is of that model's
    head, not of the defaults (a `--type-classifier prototype --unknown-rate 0` fit was scored as logreg with `unknown` on)."""
    from dataclasses import fields

    from model.fit_types import TypeOptions

    names = {f.name for f in fields(TypeOptions)} - {"batch_size"}
    return TypeOptions(**{k: v for k, v in (recorded.get("options") or {}).items() if k in names})


def _draw(y: np.ndarray, k: int, shots: int, rng: np.random.Generator) -> np.ndarray:
    idx = [rng.permutation(np.flatnonzero(y == c))[:shots] for c in range(k)]
    return np.sort(np.concatenate(idx))


def _splits(y: np.ndarray, k: int, shots: str, seed: int, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit indices, scored indices) pairs for one seed."""
    rng = np.random.default_rng(seed)
    n = np.arange(y.size)
    if shots == "all":
        fold = np.empty(y.size, dtype=int)
        for c in range(k):
            idx = rng.permutation(np.flatnonzero(y == c))
            fold[idx] = np.arange(idx.size) % folds
        return [(n[fold != f], n[fold == f]) for f in range(folds)]
    fit_idx = _draw(y, k, int(shots), rng)
    return [(fit_idx, np.setdiff1d(n, fit_idx))]


def _subhead(head, keep: list[int]):
    """A type head over a subset of the classes, sharing the pooling and CLIP buffers."""
    from model.types import TypeHead

    has_text = head.has_text
    sub = TypeHead(head.f_mean.numel() // 4, len(keep), head.text_weights.shape[1] if has_text else 0,
                   head.ln_weight.numel() if has_text else 0)
    sub.mix, sub.sharpness = head.mix.clone(), head.sharpness.clone()
    if has_text:
        sub.text_weights = head.text_weights[keep].clone()
        sub.ln_weight, sub.ln_bias, sub.proj, sub.text_mix = head.ln_weight, head.ln_bias, head.proj, head.text_mix.clone()
    return sub


def run_shots(args: argparse.Namespace, progress) -> dict[str, Any]:
    """Learning curve for `--shots`: mean and spread over seeds of the type metrics on held-back images."""
    import torch

    from model.fit_types import TypeFeatures, extract_features, fit_head, install_head
    from model.labels import check_images, load_labels
    from model.prompts import DEFAULT_PART, text_weights

    shots = str(args.shots)
    args.seeds = 5 if args.seeds is None else args.seeds
    args.folds = 10 if args.folds is None else args.folds
    if not args.data:
        raise InspectorError("--shots: give MODEL (checkpoint or backbone name) and DATA (labelled defect types)")
    if Path(args.model).is_file() and Path(args.model).name != "manifest.json":  # a checkpoint's manifest opens it
        raise InspectorError(f"--shots on {args.model}: an export's type head cannot be refitted; give its checkpoint folder "
                             "(from `inspector fit`) or a backbone name (e.g. efficientnet-lite0)")
    if shots != "all" and not (shots.isdigit() and int(shots) >= 1):
        raise InspectorError(f"--shots {shots}: give a number of examples per type (e.g. 5) or 'all'")
    if args.seeds < 1 or (shots == "all" and args.folds < 2):
        raise InspectorError("--seeds must be >= 1 and --folds >= 2")
    labels = load_labels(args.data)
    for note in labels.notes:  # as fit says them: a copy left out, a link that leads nowhere, a box file of no image
        print(one_line(f"note: {note}"), file=sys.stderr)  # a file name may hold a line break
    classes, y = labels.types, labels.targets
    least = 3 if args.holdout else 2  # with one type held out, the head must still tell two apart
    if len(classes) < least:
        raise InspectorError(f"data {args.data}: {len(classes)} defect type(s) ({', '.join(classes)}); --shots"
                             f"{' --holdout' if args.holdout else ''} needs at least {least}")
    if args.holdout and shots != "all" and int(shots) == 1:  # read 0.000 held-out -> unknown, as if the model never flagged a new type
        raise InspectorError("--holdout with --shots 1: `unknown` needs 2 examples of each type to set its threshold, so no "
                             "held-out type could come back unknown; give --shots 2 or more")
    counts = np.bincount(y, minlength=len(classes))
    need = args.folds if shots == "all" else int(shots) + 1
    if counts.min() < need:
        short = classes[int(counts.argmin())]
        has = f"type {short} has {counts.min()} images"
        if shots == "all":
            fix = f"lower --folds (to {counts.min()} at most)" if counts.min() >= 2 else f"add {short} examples (2 folds, the least, need 2)"
            per = f"--shots all with --folds {args.folds} needs at least {need} per type; {fix}"
        else:  # "needs at least 6 per type" alone, to a user who took `--shots 5` from a hint, left the fix to guess
            from model.fit_types import most_shots

            by_type = dict(zip(classes, counts.tolist(), strict=True))
            fewer = [t for t, n in by_type.items() if n < need and t != short]
            has += "".join(f", {t} {by_type[t]}" for t in fewer)  # each type short of them named, not the first alone
            most = most_shots(by_type, 2 if args.holdout else 1)  # --holdout refuses --shots 1
            more = f"add examples of {', '.join([short, *fewer])}"
            per = (f"--shots {shots} needs at least {need} per type (the shots and one to score): "
                   + (f"give --shots {most} at most, or {more}" if most else more))
        raise InspectorError(f"data {args.data}: {has}; {per}")
    net, recorded = _open_net(args.model, args.size)
    # each image and its mask or boxes read now: extracting features stopped at the first bad one, minutes into NEU's 1,800,
    # naming it alone (a located region moves, so only a fixed one must be in every image)
    framing = net.config.framing
    check_images(labels, framing.roi if framing is not None and not framing.margin else None)
    options = fitted_options(recorded)
    options.validate()
    part = recorded.get("part") or DEFAULT_PART  # the prompts the model was fitted with
    tw = text_weights(net.backbone, classes, part) if hasattr(net.backbone, "encode_text") else None
    head, region = install_head(net, classes, options.region, tw)
    head.sharpness = torch.tensor(float(options.sharpness))
    # scored images are pooled as served (the map only); fitted ones as `fit` pools them
    scored_feats = extract_features(net, head, labels, use_masks=False, progress=progress)
    has_regions = options.use_masks and region == "map" and any(it.mask_path or it.boxes_path for it in labels.items)
    fit_feats = extract_features(net, head, labels, use_masks=True, progress=progress) if has_regions else scored_feats

    off: list[bool] = []  # per fit: `unknown` off (a type with one example to fit on has no out-of-fold score)

    def evaluate(h, keep: list[int], fit_idx: np.ndarray, test_idx: np.ndarray) -> np.ndarray:
        remap = np.full(len(classes), -1)
        remap[keep] = np.arange(len(keep))
        emb = fit_feats.image_emb
        info = fit_head(h, TypeFeatures(fit_feats.raw[fit_idx], None if emb is None else emb[fit_idx]), torch.from_numpy(remap[y[fit_idx]]), options)
        off.append(info["unknown_threshold"] is None)
        z = h.normalise(scored_feats.raw[test_idx])
        e = None if scored_feats.image_emb is None else scored_feats.image_emb[test_idx]
        with torch.no_grad():
            return h.probs(z, e).numpy()

    runs, confusion = [], {}
    for seed in range(args.seeds):
        true, probs = [], []
        for fit_idx, test_idx in _splits(y, len(classes), shots, seed, args.folds):
            probs.append(evaluate(head, list(range(len(classes))), fit_idx, test_idx))
            true += [classes[i] for i in y[test_idx]]
        r = report_from_probs(true, np.concatenate(probs), classes)
        runs.append(r)
        for t, row in r["type_confusion"].items():
            for q, v in row.items():
                confusion.setdefault(t, {}).setdefault(q, 0)
                confusion[t][q] += v
    keys = ("type_accuracy", "type_macro_f1", "type_accuracy_open_set", "type_unknown_rate")
    # --shots 3 is the number 3, not "3"
    out: dict[str, Any] = {"mode": "shots", "shots": shots if shots == "all" else int(shots), "seeds": args.seeds,
                           "folds": args.folds if shots == "all" else None,
                           "region": region, "classifier": options.classifier, "unknown_rate": options.unknown_rate,
                           "classes": classes, "counts": dict(zip(classes, counts.tolist(), strict=True))}
    for key in keys:
        vals = [r[key] for r in runs]
        out[key], out[key + "_std"] = round(float(np.mean(vals)), 4), round(float(np.std(vals)), 4)
    out["per_seed"] = [{k: r[k] for k in keys} for r in runs]
    out["type_confusion"] = confusion
    if args.holdout:
        out["holdout"] = _holdout(head, classes, y, shots, args, evaluate)
    if options.unknown_rate > 0 and any(off):  # type_unknown_rate 0.0 read as a model that never said unknown
        out["unknown_off"] = (f"`unknown` was off in {sum(off)} of the {len(off)} fits: its threshold needs 2 examples of each "
                              "type to fit on, and a type had 1; those fits named no image `unknown`")
    return out


def _holdout(head, classes: list[str], y: np.ndarray, shots: str, args: argparse.Namespace, evaluate) -> dict[str, Any]:
    """Each type in turn left out of fitting: how often its images come back `unknown`, and the known ones do."""
    per_type = {}
    for held in range(len(classes)):
        keep = [c for c in range(len(classes)) if c != held]
        sub = _subhead(head, keep)
        unk, false_unk = [], []
        for seed in range(args.seeds):
            known = np.flatnonzero(y != held)
            for fit_rel, test_rel in _splits(np.searchsorted(keep, y[known]), len(keep), shots, seed, args.folds):
                fit_idx = known[fit_rel]
                test_known = known[test_rel]
                pk = evaluate(sub, keep, fit_idx, test_known)
                pu = evaluate(sub, keep, fit_idx, np.flatnonzero(y == held))
                false_unk.append(float((pk[:, -1] >= 0.5).mean()))
                unk.append(float((pu[:, -1] >= 0.5).mean()))
        per_type[classes[held]] = {"unknown_rate": round(float(np.mean(unk)), 4), "false_unknown_rate": round(float(np.mean(false_unk)), 4)}
    return {"per_type": per_type,
            "unknown_rate": round(float(np.mean([v["unknown_rate"] for v in per_type.values()])), 4),
            "false_unknown_rate": round(float(np.mean([v["false_unknown_rate"] for v in per_type.values()])), 4)}


def print_shots(report: dict[str, Any]) -> None:
    s = report["shots"]
    print(f"type head, {s} shot(s) per type" + (f" ({report['folds']}-fold CV)" if report["folds"] else "")
          + f", {report['seeds']} seed(s), {report['region']} pooling, {report['classifier']} classifier, `unknown` rate "
          + f"{report['unknown_rate']}: {', '.join(report['classes'])}")
    if counts := report.get("counts"):  # 0.8333 read as a measurement where it rested on one image of a type
        scored = {t: n - (0 if s == "all" else s) for t, n in counts.items()}
        print(f"  scored per seed: {sum(scored.values())} images ({', '.join(f'{t} {n}' for t, n in scored.items())})")
    for key in ("type_accuracy", "type_macro_f1", "type_accuracy_open_set", "type_unknown_rate"):
        spread = f" ± {report[key + '_std']:.4f}" if report["seeds"] > 1 else ""  # one seed has no spread to give
        print(f"  {key:24} {report[key]:.4f}{spread}")
    if report.get("unknown_off"):
        print(f"  note: {report['unknown_off']}")
    if "holdout" in report:
        h = report["holdout"]
        print(f"  held-out type -> unknown: {h['unknown_rate']:.3f} (known types -> unknown: {h['false_unknown_rate']:.3f})")
        for t, v in h["per_type"].items():
            print(f"    {t:20} {v['unknown_rate']:.3f}  (false unknown {v['false_unknown_rate']:.3f})")
