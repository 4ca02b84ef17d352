"""`inspector eval MODEL DATA`: image- and pixel-level metrics on a labelled dataset (MVTec AD layout)."""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inspector.cli import one_line
from inspector.commands.common import DEVICE_HELP, model_first, path_of, print_json, tqdm_bars
from inspector.commands.types_eval import add_eval_args as add_type_args
from inspector.commands.validation_report import REPORT_OPTIONS, add_report_args, drop_unused_folder, report_style, write_report
from model.errors import InspectorError
from model.label_names import GOOD

if TYPE_CHECKING:  # imported where used: `inspector --help` loads no torch
    from inspector.engines.base import ModelMeta
    from model.data import Dataset
    from model.evaluate import Scored


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model on labelled test images", description=__doc__)
    p.add_argument("model", type=path_of("model"), help="checkpoint directory or exported model (with --ablation: the data folder)")
    p.add_argument("data", nargs="?", type=path_of("data folder"), help="MVTec AD layout folder with test/good and test/<defect type>")
    p.add_argument("--ablation", action="store_true",
                   help="fit good-only / + pixel synthesis (whole-image and per-patch branch) / + feature flow / "
                        "+ Gaussian noise on DATA's train images and compare them on its test images: "
                        "`inspector eval DATA --ablation`")
    p.add_argument("--synth", type=int, default=None, help="with --ablation: synthetic defect images per variant (default 300)")
    p.add_argument("--size", type=int, default=None, help="input size in px where eval fits its own models: with --ablation, "
                   "and with --shots on a backbone name (default 256)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument("--no-overlap", dest="overlap", action="store_false",
                   help="skip the check for test images that are other captures of training images (saves a backbone pass)")
    p.add_argument("--new-parts", nargs="?", type=int, const=5, default=None, metavar="FOLDS",
                   help="also refit the model's settings on all but a fold of the training parts (captures of one part kept "
                        "together) and score the held-out parts against the test defects: how it does on parts it has never "
                        "seen (default 5 folds; costs that many fits)")
    add_type_args(p)
    add_report_args(p)
    p.set_defaults(func=run)


@dataclass
class Evaluation:
    """`inspector eval`'s JSON object (`report`), and what it was computed from: the data set, its test images' scores
    and maps, and the model's metadata."""

    report: dict
    dataset: Dataset
    scored: Scored
    meta: ModelMeta


def evaluate_model(model: str, data: str, device: str = "cpu", progress=None, overlap: bool = True,
                   new_parts: int | None = None) -> Evaluation:
    from inspector.engines import open_engine
    from model.data import load_dataset
    from model.evaluate import check_masks, metrics_report, overlap_report, pixel_threshold_report, score_samples, threshold_report
    from model.fit import check_test_headers
    from model.quality import quality_report

    dataset = load_dataset(data, require_train=False)
    defects, goods = any(s.is_defect for s in dataset.test), any(not s.is_defect for s in dataset.test)
    if not (defects and goods):
        if dead := _dead_test_folder(dataset.root, defects, goods):  # not "eval needs both test/good and ...", of folders
            raise InspectorError(dead)  # that are there, as links to a share gone
        if not dataset.test:
            raise InspectorError(f"data {data}: no test/<type> folders with images; eval needs labelled test images{layout_hint(dataset.root, model)}")
        has = sorted({s.defect_type for s in dataset.test})  # name what is there: "needs both" read as though neither were
        missing = "test/<defect> folder with images" if goods else "test/good folder with images"
        raise InspectorError(f"data {data}: has {', '.join(f'test/{t}/' for t in has)} ({len(dataset.test)} images) but no "
                             f"{missing}; eval needs both")
    check_test_headers(dataset)
    check_masks(dataset.test, dataset.root)
    engine = open_engine(model, device=device)
    manifest = engine.meta.manifest
    if new_parts is not None:  # checked before scoring, so a bad request costs no time
        from model.new_parts import check_folds, check_training_images, new_parts_report, options_from_manifest

        if not dataset.train:
            raise InspectorError(f"data {data}: --new-parts refits on train/good, which has no images")
        check_folds(new_parts)
        check_training_images(len(dataset.train), new_parts, data)
        refit_options = options_from_manifest(manifest.get("options"), model)
    type_rows = []  # score_samples runs one image at a time, in order: collect the type probabilities beside it

    def predict(batch):
        out = engine.infer(batch)
        if out.type_probs is not None:
            type_rows.append(out.type_probs)
        return out.score, out.amap

    scored = score_samples(predict, dataset.test, size=engine.meta.input_size, progress=progress or tqdm_bars(), with_masks=True,
                           framing=engine.meta.framing)
    report = metrics_report(dataset.test, scored)
    if notes := dataset.notes + labelled_twice(dataset):
        report["notes"] = notes + report.get("notes", [])
    report["fit_seconds"] = (manifest.get("training") or {}).get("fit_seconds")
    report["at_threshold"] = threshold_report(dataset.test, scored.scores, engine.meta.image_threshold)
    if quality := (manifest.get("training") or {}).get("image_quality"):
        report["image_quality"] = quality_report([s.is_defect for s in dataset.test], [str(s.path) for s in dataset.test],
                                                 scored.quality, quality)
    add_framing_warnings(report, dataset, scored, engine.meta)
    here = calibrated_here(manifest, dataset)
    report["at_threshold"].update(threshold_origin(manifest.get("calibration") or {}, dataset))
    report["at_threshold"].update(held_out_rates(manifest, dataset, scored.scores, here))
    pixels = scored.pixels
    if pixels is not None:
        report["at_pixel_threshold"] = pixel_threshold_report(*pixels, engine.meta.pixel_threshold)
        report["at_pixel_threshold"].update(pixel_held_out(manifest, here, *pixels, dataset))
    if type_rows and engine.meta.class_names:
        from inspector.commands.types_eval import report_from_probs
        from model.hashing import sha256_file

        probs = np.concatenate(type_rows)
        defects = [i for i, s in enumerate(dataset.test) if s.is_defect]
        report.update(report_from_probs([dataset.test[i].defect_type for i in defects], probs[defects], list(engine.meta.class_names)))
        fitted = set((manifest.get("types") or {}).get("fitted_images") or ())
        report["types_fitted_on_these_images"] = sum(sha256_file(dataset.test[i].path)[:16] in fitted for i in defects)
    train_descriptors = None  # one backbone pass over the training images serves both checks below
    if overlap and dataset.train:
        from model.overlap import TWIN_RANK, describe, twins

        n = len(dataset.train)
        try:
            if n < TWIN_RANK:  # twins() finds none below that: the report read "0 good and 0 defect twins", unchecked
                raise InspectorError(f"train/good has {n} image(s); telling a test image that is another capture of a training "
                                     f"part from a new part takes at least {TWIN_RANK}")
            both = describe([s.path for s in dataset.train + dataset.test], progress or tqdm_bars(), engine.meta.framing)
            train_descriptors = [d[:n] for d in both]
            report["train_overlap"] = overlap_report(dataset.train, dataset.test, scored, twins(train_descriptors, [d[n:] for d in both]))
        except InspectorError as e:  # a bad training image must not cost the metrics already computed
            report["train_overlap"] = {"skipped": str(e)}
    if new_parts is not None:
        from model.overlap import part_groups

        parts = part_groups(train_descriptors) if train_descriptors is not None else None
        try:
            report["new_parts"] = new_parts_report(dataset, refit_options, new_parts, progress or tqdm_bars(), parts,
                                                   framing=engine.meta.framing)
        except InspectorError as e:  # e.g. fewer parts than folds: found only now, and the metrics above are kept
            report["new_parts"] = {"skipped": str(e)}
    report["model"] = {"id": engine.meta.model_id, "backbone": engine.meta.backbone, "runtime": engine.meta.runtime,
                       "input_size": list(engine.meta.input_size), **engine.meta.framing.summary()}
    return Evaluation(report, dataset, scored, engine.meta)


def add_framing_warnings(report: dict, dataset: Dataset, scored: Scored, meta: ModelMeta) -> None:
    """`framing_warnings` (and a note where there are any): the test images inspection would warn about for how the
    part lies in the frame, as the station does (Inspector.inspect_batch): a size unlike the training images' (where the
    model records theirs) and, for a --locate model, a part found only weakly or reaching past the frame's edge; left
    out where the model can give none of these. A QA engineer learnt of them only at the station."""
    from inspector.api import unlike_training
    from inspector.result import warning_kinds
    from model.evaluate import framing_note, framing_report

    sizes = (meta.manifest.get("training") or {}).get("image_size")
    framing = meta.framing
    checked = (["size"] if sizes else []) + (["locate", "edge"] if framing.roi is not None and framing.margin else [])
    if not checked or scored.framed is None or scored.shapes is None:
        return
    kinds = [warning_kinds([w for w in (unlike_training(shape, sizes, framing.fixed), located) if w])
             for shape, located in zip(scored.shapes, scored.framed, strict=True)]
    report["framing_warnings"] = framed = framing_report([s.is_defect for s in dataset.test], [str(s.path) for s in dataset.test],
                                                         kinds, checked)
    if note := framing_note(framed, len(dataset.test)):
        report["notes"] = report.get("notes", []) + [note]


UNRECORDED = " (this model does not record what it was calibrated on: evaluate its checkpoint to know whether on these images)"


def calibrated_here(manifest: dict, dataset) -> bool | None:
    """Whether fitting calibrated the thresholds on this dataset's test images: the same files with the same labels
    (checkpoints from before 2026-12-03 record no digest: the same folder name and counts); None when the manifest
    does not say how it was calibrated (exports made before their manifests carried it)."""
    if "calibration" not in manifest:
        return None
    training, cal = manifest.get("training") or {}, manifest.get("calibration") or {}
    if cal.get("test_sha256"):
        return cal["test_sha256"] == dataset.test_sha256
    y = np.array([s.is_defect for s in dataset.test])
    root = Path(training.get("root") or "")  # as given to fit, maybe relative to another working directory
    return (root.resolve() == dataset.root.resolve() or root.name == dataset.root.name) and (
        int(cal.get("n_good") or 0) - int(training.get("n_images") or 0) == int((~y).sum()) and int(cal.get("n_defect") or 0) == int(y.sum()))


def labelled_twice(dataset) -> list[str]:
    """A note for each test image whose very bytes are also under another label (a good image copied into a defect
    folder): it counted as both, moving every metric, and nothing said so."""
    seen: dict[str, list] = {}
    for sample, digest in zip(dataset.test, dataset.test_digests, strict=True):
        seen.setdefault(digest, []).append(sample)
    return [f"the same image is labelled {' and '.join(sorted({s.defect_type for s in same}))}: "
            f"{', '.join(str(s.path) for s in same)}; keep it under its true label only"
            for same in seen.values() if len({s.defect_type for s in same}) > 1]


def _dead_test_folder(root: Path, has_defects: bool, has_good: bool) -> str | None:
    """The line for a test folder eval lacks whose images are all links leading nowhere (test/good when it has no good
    images, a test/<defect> when it has no defects), else None."""
    from model.images import only_dead_links, scan_images

    test = root / "test"
    if not test.is_dir():
        return None
    for folder in sorted(d for d in test.iterdir() if d.is_dir()):
        lacking = not has_good if folder.name == GOOD else not has_defects  # a kind of image eval has none of
        if lacking and (dead := only_dead_links(scan_images(folder))):
            return f"data {folder}: no images: {dead}"
    return None


def layout_hint(root: Path, model: str = "efficientnet-lite0") -> str:
    """Where the MVTec AD layout's root is, when `root` is a folder inside it (its test/ or train/ folder, or one inside
    them): "no test/<type> folders" alone had the user look for folders that are there; and where the labelled images
    go, for a folder that holds good/ (and type folders) one level too high, or images with no label at all."""
    for inside, above in ((root, root.parent), (root.parent, root.parent.parent)):
        if inside.name == "test" and (inside / GOOD).is_dir():
            return f"; {inside} is the test/ folder of an MVTec AD layout: give the folder above it, {above}"
        if inside.name == "train" and (inside / GOOD).is_dir():  # the training images: good, but no test of the model
            return f"; {inside} holds the training images, which eval does not score: give the folder above it, {above}, whose test/ it reads"
    from model.images import list_images

    try:
        folders = sorted(d.name for d in root.iterdir() if d.is_dir() and list_images(d))
        loose = bool(list_images(root))
    except OSError:
        return ""
    types = [t for t in folders if t.lower() != GOOD]
    layout = (f"eval reads good parts' images in {root / 'test' / GOOD} and each defect type's in {root / 'test'}/<type>, masks "
              f"in {root / 'ground_truth'}/<type>/<name>_mask.png")
    if len(types) < len(folders):  # good/ (and scratch/) side by side: the layout one level too high
        good = next(t for t in folders if t.lower() == GOOD)
        beside = f" beside {', '.join(t + '/' for t in types[:3])}{', ...' if len(types) > 3 else ''}" if types else ""
        return f"; {root} holds {good}/{beside}, one level too high: {layout}; move {'those folders' if types else 'it'} into {root / 'test'}/"
    if loose and not folders:  # a folder of images, none labelled: said only "no test/<type> folders"
        return f"; {root}'s images carry no good or defect label: {layout}; `inspector inspect {model} {root}` gives each a verdict unlabelled"
    if len(types) >= 2:  # NEU's layout, as --labels reads it: "eval needs labelled test images" of a folder of them
        shown = ", ".join(t + "/" for t in types[:3]) + (", ..." if len(types) > 3 else "")
        from model.fit_types import shots_command  # --shots that its types allow (a hint's 5 was refused of 2 images)

        return (f"; if {root}'s folders ({shown}) are defect types (the layout `--labels` reads), "
                f"{shots_command(model, root)} measures how well they are told apart (a model's verdicts are evaluated on test/good "
                "and test/<type> folders)")
    return ""


def threshold_origin(calibration: dict, dataset) -> dict:
    """What the stored threshold answers to: the policy it was chosen for (None: set by hand), and how many of these
    test images it was chosen on (models fitted before 2026-12-05 record only the whole set's digest). A threshold set
    by hand was chosen on none: the images kept are the fit's, and counting them had the report say both."""
    out = {"policy": calibration.get("policy")} if "policy" in calibration else {}
    if "test_images" in calibration and out.get("policy", True) is not None:
        # each calibration image counts as often as it was calibrated on: a copy of it under another label is not (it
        # counted twice, "calibrated on 31 of these 31" where 30 were)
        chosen_on = Counter(calibration["test_images"]) & Counter(d[:16] for d in dataset.test_digests)
        out["test_images_calibrated_on"] = sum(chosen_on.values())
    return out


def held_out_rates(manifest: dict, dataset, scores: np.ndarray, here: bool) -> dict:
    """When the threshold was calibrated on these very test images, its rates on them are met by
    construction: say so, and add the rates the policy gives on folds it was not calibrated on. `here`: calibrated_here()."""
    cal = manifest.get("calibration") or {}
    if not here or not cal.get("policy"):
        return {"calibrated_on_these_images": None if here is None else False}
    from model.calibration import Policy, cross_validated_rates

    y = np.array([s.is_defect for s in dataset.test])
    n_train = int((manifest.get("training") or {}).get("n_images") or 0)
    train_good = np.asarray((manifest.get("calibration_scores") or {}).get("good", [])[:n_train])
    rates = cross_validated_rates(Policy(**cal["policy"]), scores[~y], scores[y], train_good)
    return {"calibrated_on_these_images": True, **({"held_out": {"policy": cal["policy"], **rates}} if rates else {})}


def pixel_held_out(manifest: dict, here: bool, masks: np.ndarray, maps: np.ndarray, dataset) -> dict:
    """The same for the pixel threshold, when fitting chose it by F1-max on these images' masks (the same masks, where
    the manifest records them: checkpoints from before 2026-12-06 do not)."""
    cal = manifest.get("calibration") or {}
    if not (str(cal.get("pixel_threshold_source", "")).startswith("test masks") and here):
        return {"calibrated_on_these_images": None if here is None else False}
    if cal.get("masks_sha256") and cal["masks_sha256"] != dataset.masks_sha256:
        return {"calibrated_on_these_images": False, "masks_changed": True}
    from model.calibration import cross_validated_pixel_threshold

    held = cross_validated_pixel_threshold(masks, maps)
    return {"calibrated_on_these_images": True, **({"held_out": held} if held else {})}


def policy_text(at: dict) -> str:
    if "policy" not in at:
        return ""
    p = at["policy"]
    return " (set by hand)" if p is None else f" (chosen for at most {100 * p['target']:g}% {'escapes' if p['kind'] == 'escape' else 'false alarms'})"


def run_ablation(args: argparse.Namespace) -> int:
    from model.ablation import METRICS, run_ablation
    from model.data import load_dataset
    from model.fit import FitOptions

    rows = run_ablation(load_dataset(args.model), FitOptions(input_size=args.size, seed=0), synth=args.synth, progress=tqdm_bars())
    if args.json:
        print_json({"data": args.model, "synth": args.synth, "variants": rows})
        return 0
    width = max(len(r["variant"]) for r in rows)  # 36 before: the longer names pushed their rows' numbers off the columns
    header = ["variant".ljust(width), *(m.rjust(16) for m in METRICS), "fit s".rjust(7), "blend".rjust(6)]
    print(" ".join(header))
    for r in rows:
        cells = [r["variant"].ljust(width), *(f"{r[m]:16.4f}" if r[m] is not None else " " * 15 + "-" for m in METRICS),
                 f"{r['fit_seconds']:7.1f}", f"{r['alpha']:6.2f}" if r["alpha"] is not None else "     -"]
        print(" ".join(cells))
    return 0


def _refuse_idle_options(args: argparse.Namespace) -> None:
    """An option its mode does not use was accepted and ignored (e.g. --size without --ablation): say so instead."""
    if args.ablation and args.shots is not None:
        raise InspectorError(f"--ablation with --shots {args.shots}: two modes of eval; drop one")
    given = {"--synth": args.synth, "--size": args.size, "--seeds": args.seeds, "--folds": args.folds,
             "--holdout": args.holdout or None, "--new-parts": args.new_parts, "--report": args.report}
    used = {"--synth": args.ablation, "--size": args.ablation or args.shots is not None, "--seeds": args.shots is not None,
            "--folds": args.shots == "all", "--holdout": args.shots is not None,
            "--new-parts": not args.ablation and args.shots is None}
    used["--report"] = used["--new-parts"]
    model_eval = "a model's evaluation (not --ablation or --shots)"
    for flag, value in given.items():
        if value is not None and not used[flag]:
            where = {"--synth": "--ablation", "--size": "--ablation or --shots", "--folds": "--shots all",
                     "--new-parts": model_eval, "--report": model_eval}.get(flag, "--shots")
            raise InspectorError(f"{flag}{'' if value is True else f' {value}'}: applies only with {where}; drop it")
    if args.size is not None and args.shots is not None and Path(args.model).exists():  # silently ignored before
        raise InspectorError(f"--size {args.size}: applies only with a backbone name; checkpoint {args.model} keeps its own input size; drop it")
    for name in REPORT_OPTIONS:
        if getattr(args, name) is not None and args.report is None:
            raise InspectorError(f"--{name}: applies only with --report DIR; add it or drop --{name}")
    args.synth = 300 if args.synth is None else args.synth
    args.size = 256 if args.size is None else args.size


def _refuse_backbone_name(model: str, data: str) -> None:
    """A backbone name is a model only to --shots, which fits its own type heads: without it, "model efficientnet-lite0:
    no such file or directory" had a user who read docs/types.md's `eval efficientnet-lite0 NEU --shots 5` look for a
    file."""
    from model.backbones import EFFICIENTNET_LITE

    if not Path(model).exists() and (model in EFFICIENTNET_LITE or model.startswith("clip:")):
        from model.fit_types import shots_command

        raise InspectorError(f"model {model}: a backbone name, which eval takes only with --shots (it fits type heads of "
                             f"its own on labelled defects: {shots_command(model, data)}); to evaluate a "
                             "station's model, give its checkpoint from `inspector fit` or its export")


def run(args: argparse.Namespace) -> int:
    _refuse_idle_options(args)
    if args.shots is not None:
        from inspector.commands.types_eval import print_shots, run_shots

        shots = run_shots(args, tqdm_bars())
        print_json(shots) if args.json else print_shots(shots)
        return 0
    if args.ablation:
        if args.data:
            raise InspectorError("--ablation fits its own models: give only the data folder, `inspector eval DATA --ablation`")
        return run_ablation(args)
    if not args.data:
        raise InspectorError("eval needs a model and a data folder: `inspector eval MODEL DATA` (or `inspector eval DATA --ablation`)")
    model_first("eval", args.model, args.data)
    _refuse_backbone_name(args.model, args.data)
    style = report_style(args)
    try:
        evaluation = evaluate_model(args.model, args.data, args.device, overlap=args.overlap, new_parts=args.new_parts)
    except BaseException:
        drop_unused_folder(args)
        raise
    report = evaluation.report
    if style is not None:
        report["validation_report"] = write_report(evaluation, args, style)
    if args.json:
        print_json(report)
        return 0
    print(f"{report['n_good']} good, {report['n_defect']} defect test images; model {report['model']['id']} ({report['model']['runtime']})")
    unmasked = report.get("defects_without_masks") or 0
    marked = report["n_defect"] - unmasked - (report.get("defects_with_empty_masks") or 0)  # blank masks: their own note
    no_pixels = (f"- (none of the {unmasked} defect images has a ground_truth mask)" if unmasked and unmasked == report["n_defect"]
                 else f"- (no defect pixels in ground_truth masks; {unmasked} of the {report['n_defect']} defect images {'has' if unmasked == 1 else 'have'} none)"
                 if unmasked else "- (no defect pixels in ground_truth masks)")
    for key in ("image_auroc", "image_ap", "pixel_auroc", "pixel_ap", "aupro", "f1_max", "fpr_at_recall_99", "fpr_at_recall_100",
                "tpr_at_fpr_1", "ms_per_image", "fit_seconds"):
        value = report.get(key)
        if value is None:
            value = no_pixels if key in ("pixel_auroc", "pixel_ap", "aupro") else "-"
        elif key == "ms_per_image":  # read as the station's latency, which decoding and the rest add to
            value = f"{value} (median, the model alone, one image at a time: not decoding or the rest; `inspector bench` times those)"
        print(f"  {key:18} {value}")
    for t, v in report["per_type_auroc"].items():
        print(f"  auroc[{t}]".ljust(20) + f" {v}")
    # in the JSON only before: the pixel metrics silently left them out ("on the 0 defect images" where none was left)
    if 0 < unmasked < report["n_defect"] and report["pixel_auroc"] is not None:
        print(f"  note: pixel_auroc and aupro are on the {marked} defect images with a ground_truth mask; "
              f"{unmasked} {'has' if unmasked == 1 else 'have'} none and {'is' if unmasked == 1 else 'are'} left out of them")
    for note in report.get("notes", []):
        print(one_line(f"  note: {note}"))  # it may name a file, whose name may hold a line break
    if "type_accuracy" in report:
        k, scored, novel = report["types_fitted_on_these_images"], report["type_images_scored"], report.get("types_not_known")
        if scored:
            print(f"  type accuracy {report['type_accuracy']}, macro F1 {report['type_macro_f1']} on the {scored} defect images of the "
                  "model's types" + (f" (the type head was fitted on {k} of the {report['n_defect']} defect images)" if k else ""))
        else:  # "type accuracy None, macro F1 None" before, with no reason
            print(f"  type accuracy: none of the defect images is of a type the model names ({', '.join(report['type_classes'])})")
        if novel:
            print(f"  types the model does not know, left out of those: {', '.join(f'{t} {n}' for t, n in novel.items())}; "
                  f"{report['novel_types_unknown_rate']:.0%} of them named unknown")
    at = report["at_threshold"]
    among = at.get("test_images_calibrated_on")
    # a threshold set by hand answers to no calibration images, whatever the fit's were
    partly = (f" (calibrated on {among} of these {len(evaluation.dataset.test)} images)"
              if among and at.get("policy", True) and not at["calibrated_on_these_images"] else "")
    print(f"  at threshold {at['threshold']}{policy_text(at)}: false alarms {_share(at['false_alarms'], at['n_good'], 'good')}, "
          f"escapes {_share(at['escapes'], at['n_defect'], 'defect')}"
          + {True: " (calibrated on these images)", None: UNRECORDED}.get(at["calibrated_on_these_images"], partly))
    if "held_out" in at:
        h = at["held_out"]
        print(f"  held out ({h['folds']} folds, recalibrated): false alarms {_pct(h['false_alarm_rate'])}, escapes {_pct(h['escape_rate'])}")
    px = report.get("at_pixel_threshold")
    if px:
        print(f"  at pixel threshold {px['threshold']}: {_pixel_rates(px)}"
              + {True: " (chosen on these masks)", None: UNRECORDED}.get(px["calibrated_on_these_images"], "")
              + (" (chosen on these images' masks as they were at fitting; they have changed since)" if px.get("masks_changed") else ""))
        if "held_out" in px:
            h = px["held_out"]
            print(f"  held out ({h['folds']} folds, rechosen): {_pixel_rates(h)}")
    if q := report.get("image_quality"):
        n = q["good"] + q["defect"]
        print(f"  image quality: {n} of {len(evaluation.dataset.test)} test images would be warned about"
              + (f" ({', '.join(f'{c} {k}' for c, k in q['causes'].items())}; {q['good']} good, {q['defect']} defective; "
                 f"first: {q['examples'][0]['file']}): check them, or fit on images like them" if n else " (light, exposure, focus)"))
    ov = report.get("train_overlap") or {}
    if "skipped" in ov:
        print(f"  overlap check skipped: {ov['skipped']}")
    if ov.get("pairs"):
        print(f"  note: {ov['good_twins']} good and {ov['defect_twins']} defect test images look like other captures of training "
              f"images; without them image AUROC {ov['image_auroc_without_twins']}, pixel AUROC "
              f"{ov['pixel_auroc_without_twins']}, closer to what new parts will see")
        for pair in [p for p in ov["pairs"] if p["type"] != GOOD][:5]:
            print(f"    {pair['type']} {pair['test']} is like good training image {pair['train']}: mislabelled or contaminated?")
    npt = report.get("new_parts") or {}
    if "skipped" in npt:
        print(f"  new-parts check skipped: {npt['skipped']}")
    elif npt:
        print(f"  new parts ({npt['folds']} folds over {npt['parts']} training parts, {npt['n_good']} good images held out, "
              f"refitted with this model's settings): image AUROC {npt['image_auroc']} (per fold "
              f"{', '.join(map(str, npt['image_auroc_per_fold']))}), false alarms at 99% recall {npt['fpr_at_recall_99']}")
        g = npt["good_only_threshold"]
        print(f"    fitted from good images alone for {g['policy']['target']:.1%} false alarms, each refit failed "
              f"{g['false_alarm_rate']:.1%} of the new good parts and passed {g['escape_rate']:.1%} of the defects")
        c = g["check"]
        print(f"    thresholds meant to fail {'/'.join(f'{r:.0%}' for r in c['intended'])} of good parts failed "
              f"{'/'.join(f'{r:.1%}' for r in c['observed'])} of the new ones")
    for path in (report.get("validation_report") or {}).values():
        print(f"  validation report: {path}")
    return 0


def _pct(rate: float | None) -> str:
    """A rate as the other commands print it (fit, threshold: "false alarms 46.5%"), not as a fraction."""
    return "-" if rate is None else f"{rate:.1%}"


def _pixel_rates(px: dict[str, Any]) -> str:
    """The rates at a pixel threshold; one undefined (printed `None` before) is `-`, and why is said."""
    said = {k: "-" if px[k] is None else px[k] for k in ("precision", "recall", "f1")}
    why = [w for k, w in (("precision", "no pixel over it"), ("recall", "no defect pixel in the masks")) if px[k] is None]
    return f"pixel precision {said['precision']}, recall {said['recall']}, F1 {said['f1']}" + (f" ({'; '.join(why)})" if why else "")


def _share(count: int, n: int, of: str) -> str:
    return f"{count / n:.1%} ({count} of {n} {of})" if n else "-"
