"""`inspector fit DATA --out CKPT`: fit a station model from good images and calibrate it."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from inspector.cli import one_line
from inspector.commands.common import (
    add_policy_args,
    at_least,
    int_list,
    names_given,
    path_of,
    policy_from,
    print_json,
    roi,
    seed,
    tqdm_bars,
)
from inspector.commands.types_cli import add_fit_args as add_type_args
from inspector.commands.types_cli import describe_fit as describe_types
from inspector.commands.types_cli import fit_types_from_args, labelled_pass_note, load_type_labels
from model.errors import InspectorError
from model.folders import writable_folder

if TYPE_CHECKING:
    from model.data import Dataset, Sample
    from model.fit import FitOptions


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="fit a model from good images (MVTec AD layout or a folder)", description=__doc__)
    p.add_argument("data", type=path_of("data folder"), help="folder: MVTec AD layout (train/good, test/<type>, ground_truth) or plain good images")
    p.add_argument("--out", required=True, type=path_of("checkpoint folder"), help="checkpoint directory to write")
    p.add_argument("--backbone", default="efficientnet-lite0", help="efficientnet-lite0|1|2 or clip:<model>:<weights path> (default efficientnet-lite0)")
    p.add_argument("--layers", type=int_list, default=(), help="backbone feature levels, e.g. 2,3,4 (default per backbone)")
    p.add_argument("--roi", type=roi, default=None, metavar="X,Y,W,H",
                   help="inspect only this region of every image (left, top, width, height in pixels; default: all of it)")
    p.add_argument("--locate", type=at_least(1), default=0, metavar="PX",
                   help="with --roi: the region follows the part, found within PX pixels of where it is in the first training image (default: it stays put)")
    p.add_argument("--turn", type=float, default=0.0, metavar="DEG",
                   help="with --locate: the part may also turn up to DEG degrees either way from the first training image's pose (default 0: no turn)")
    p.add_argument("--ignore", action="append", default=[], metavar="X,Y,W,H|MASK",
                   help="a don't-care region, neither learnt nor judged (a printed code, a label): a rectangle in pixels of the "
                        "training images, or a mask image of their size (white: ignore); repeat for more")
    p.add_argument("--size", type=int, default=256, help="input size in px (square, a multiple of 32 from 64 to 1024; default 256)")
    p.add_argument("--coreset", type=float, default=None, help="fraction of normal patches kept in the memory bank (default 0.01)")
    p.add_argument("--neighbours", type=int, default=None, metavar="K",
                   help="a patch's distance is its mean distance to the K nearest bank patches (default 3; 1: the nearest only)")
    p.add_argument("--global-weight", type=float, default=None, help="weight of the global (whole-image) score, 0..1 (default 0.5)")
    p.add_argument("--no-position-norm", dest="position_norm", action="store_false",
                   help="score patch distances as they are, not against the good parts' distances at the same place "
                        "(for parts that are not framed the same way each time)")
    p.add_argument("--no-position-map", dest="position_map", action="store_false",
                   help="with peer position statistics: show the map of the patch distances as they are; only the score "
                        "is standardised at each place")
    p.add_argument("--references", type=int, default=0, metavar="N",
                   help="keep up to N training images (e.g. 256) and compare each part with its closest ones, patch by "
                        "patch at the same place, instead of a coreset memory bank (bigger checkpoint; see docs/fit.md; default 0: the memory bank)")
    p.add_argument("--ref-k", type=int, default=None, metavar="K", help="with --references: how many closest references each part is compared with (default 10)")
    p.add_argument("--ref-radius", type=int, default=None, metavar="R",
                   help="with --references: grid cells (8 px at 256 px) a patch may shift to find its match (default 1)")
    p.add_argument("--peers", type=int, default=None, metavar="K",
                   help="judge each part's score against the K training images most like it (default 20; 0 turns it off)")
    p.add_argument("--no-peer-position", dest="peer_position", action="store_false",
                   help="with peers: standardise patch distances by every training image's distances at the same place, "
                        "not by those of the K images most like the part")
    p.add_argument("--synth", type=int, default=None, metavar="N",
                   help="learn from N synthetic defect images made on the good ones, a learnt branch that sharpens the map "
                        "(default 1000, about 3 min; 0: good images only, seconds; with --references: 0)")
    p.add_argument("--synth-types", default="",
                   help="comma-separated synthetic defect types (default: transplant for the whole-image branch, all for --synth-head patch)")
    p.add_argument("--synth-head", default=None, choices=("context", "patch"),
                   help="with --synth: the learnt branch sees the whole image (context, default) or one patch at a time (patch)")
    p.add_argument("--synth-steps", type=int, default=None, metavar="S",
                   help="with --synth: training steps of the learnt branch (default 1500; fewer fit faster and learn less)")
    p.add_argument("--feature-synth", action="store_true",
                   help="also generate defect features with the flow-matching generator (with --synth-head patch)")
    p.add_argument("--blend", default=None, metavar="W",
                   help="with --synth: the weight of the learnt map's excess over good pixels in the map, 0-1 (default 0.5), "
                        "or 'auto' to choose it on generated defects of types it does not train on (of the same types "
                        "when fewer than three --synth-types are given)")
    p.add_argument("--seed", type=seed, default=0,
                   help="random seed of the coreset, the out-of-sample folds, the generated defects and the learnt branch (default 0)")
    p.add_argument("--add-good", action="append", default=[], metavar="DIR", type=path_of("folder of good images"),
                   help="a folder of more good images to fit on beside DATA's, e.g. the good/ of `inspector review --export` "
                        "(false alarms QA found good); repeatable")
    p.add_argument("--force", action="store_true", help="overwrite an existing checkpoint")
    p.add_argument("--json", action="store_true", help="print the fit summary as JSON")
    add_policy_args(p)
    add_type_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from model.folders import output_lock

    out = Path(args.out)
    with output_lock(out, "fit"):  # a second fit to the same --out, started meanwhile, overwrote this one's checkpoint
        return _run(args, out)


def _run(args: argparse.Namespace, out: Path) -> int:
    if (out / "manifest.json").exists() and not args.force:
        raise InspectorError(f"--out {out}: a checkpoint is already there; pass --force to overwrite it")
    if out.is_dir() and not (out / "manifest.json").exists():
        from model.folders import stale_tmp

        # a .gitkeep is no data, nor half the weights of a fit killed while it wrote them (replaced below)
        other = next((p for p in sorted(out.iterdir()) if not p.name.startswith(".") and not stale_tmp(p)), None)
        if other is not None:  # a data or export folder: the checkpoint would sit among its files, and --force cannot mean it
            raise InspectorError(f"--out {out}: holds other files ({other.name}) and no checkpoint; give a new or empty folder")
    writable_folder(out, keep=False)
    import numpy as np

    from model.calibration import trade_off_note
    from model.checkpoint import save_checkpoint
    from model.data import load_dataset
    from model.defect_learning import DEFAULT_SYNTH, DefectLearning
    from model.fit import FitOptions, fit

    dataset = load_dataset(args.data)
    dataset.train += more_good(args.add_good, dataset)
    # --references keeps whole training images instead of a bank, and learns from none of the generated ones
    synth = args.synth if args.synth is not None else 0 if args.references else DEFAULT_SYNTH
    options = FitOptions(backbone=args.backbone, layers=args.layers, input_size=args.size, seed=args.seed, policy=policy_from(args),
                         position_norm=args.position_norm, position_map=args.position_map, peer_position=args.peer_position, references=args.references,
                         roi=args.roi, locate=args.locate, turn=args.turn, ignore=tuple(args.ignore), defects=DefectLearning(synth=synth, feature_synth=args.feature_synth, head=args.synth_head or "context",
                                                types=tuple(names_given(args.synth_types, "--synth-types")), blend=_blend(args.blend)))
    if args.synth_steps is not None:
        options.defects.steps = args.synth_steps
    for flag, value in (("--blend", args.blend), ("--synth-head", args.synth_head), ("--synth-types", args.synth_types or None),
                        ("--synth-steps", args.synth_steps)):
        if value is not None and not synth:
            raise InspectorError(f"{flag} {value}: applies only when learning from generated defects, which --synth 0 and "
                                 "--references turn off; drop one or the other")
    for flag, value in (("--ref-k", args.ref_k), ("--ref-radius", args.ref_radius)):
        if value is not None and not args.references:
            raise InspectorError(f"{flag} {value}: applies only with --references N (e.g. --references 256)")
    if args.ref_k is not None and args.references and args.ref_k > args.references - 1:
        raise InspectorError(f"--ref-k {args.ref_k}: at most --references - 1 ({args.references - 1}), since each training image "
                             "is scored without itself")
    if not args.peer_position and args.peers == 0:
        raise InspectorError("--no-peer-position: applies only with peers, which --peers 0 turns off; drop one or the other")
    if args.ref_k is not None:
        options.ref_k = args.ref_k
    if args.ref_radius is not None:
        options.ref_radius = args.ref_radius
    if args.peers is not None:
        if args.peers > len(dataset.train) - 1:  # each training image is judged against the others only
            raise InspectorError(f"--peers {args.peers}: at most {len(dataset.train) - 1}, since each of the {len(dataset.train)} "
                                 "training images is judged against the others; give fewer, or 0 to turn peers off")
        options.peers = args.peers
    if args.coreset is not None:
        options.coreset_ratio = args.coreset
    if args.neighbours is not None:
        if args.references:
            raise InspectorError(f"--neighbours {args.neighbours}: applies only to the memory bank, which --references replaces; drop one of them")
        options.neighbours = args.neighbours
    if args.global_weight is not None:
        options.global_weight = args.global_weight
    labels = load_type_labels(args)
    if labels is not None:
        refuse_labels_in_training(args.labels, [it.path for it in labels.items], dataset)
    for note in dataset.notes:  # before minutes of fitting, after the one-line refusals; one line each, as inspect's (a name may hold a newline)
        print(one_line(f"note: {note}"), file=sys.stderr)
    check_room(out, len(dataset.train), options)
    if options.locate and dataset.train:
        warn_locate(dataset.train[0].path, options)
    net, report = fit(dataset, options, progress=tqdm_bars())
    for flag, asked, used, why in (
            ("--neighbours", args.neighbours, report.options["neighbours"], f"the memory bank holds {report.training['bank_size']} patches"),
            ("--peers", args.peers, report.options["peers"], f"{report.training['n_images']} distinct training images leave "
                                                             f"{report.options['peers']} others to each"),
            ("--references", args.references or None, report.options["references"],
             f"there are {report.training['n_images']} distinct training images"),
            ("--ref-k", args.ref_k, report.options["ref_k"], f"each training image is scored against the "
                                                             f"{report.options['references']} references less itself")):
        if asked is not None and used < asked:  # the value used is the one recorded, and what the model and its exports do
            print(f"note: {flag} {asked}: {why}, so {used} were used (recorded in the manifest)", file=sys.stderr)
    types = fit_types_from_args(net, args, tqdm_bars(), labels)
    manifest = save_checkpoint(net, out, {
        "options": report.options, "training": report.training, "calibration": report.calibration,
        "thresholds": report.thresholds, "calibration_scores": report.scores, **({"types": types} if types else {}),
    })
    summary = {"checkpoint": str(out), "model_id": manifest["files"]["model.safetensors"][:12], **report.training,
               "thresholds": report.thresholds, "calibration": report.calibration, **({"types": types} if types else {})}
    if args.json:
        print_json(summary)
    else:
        cal = report.calibration
        scoring = report.training.get("calibration_seconds")
        print(f"fitted {report.training['n_images']} good images in {report.training['fit_seconds']:.1f} s"
              + (f" (+ {scoring:.1f} s scoring the {len(dataset.test)} test images for the threshold)" if scoring is not None else "")
              + f" -> {out}")
        patches = (f"{net.config.references} reference images" if net.config.references
                   else f"memory bank {report.training['bank_size']} patches")
        print(f"  backbone {options.backbone}, layers {report.options['layers']}, {options.input_size}px{net.config.framing.describe()}, "
              f"{patches}")
        print(f"  threshold {report.thresholds['image']:.4f} ({cal['policy']['kind']} target {cal['policy']['target']:g}; "
              f"on calibration data: false alarms {cal['far']:.1%}" + (f", escapes {cal['escape']:.1%})" if cal["escape"] is not None else ")"))
        print(f"  calibrated on {cal['source']}")
        if cal["note"]:
            print(f"  note: {cal['note']}")
        trade = trade_off_note(np.asarray(report.scores["good"]), np.asarray(report.scores["defect"]), report.thresholds["image"], str(out))
        if trade:
            print(f"  note: {trade}")
        copies = report.training.get("copies_left_out")
        if copies:
            print(f"  note: {len(copies)} training image(s) are byte-identical copies of others and were left out, "
                  f"e.g. {copies[0]['file']} (the same bytes as {copies[0]['copy_of']}, which was kept)")
        if types:
            print(describe_types(types))
            if passing := labelled_pass_note(_not_calibrated_on(types, report.calibration, dataset), report.thresholds["image"]):
                print(f"  note: {passing}")
        learnt = report.training.get("generated_defects")
        if learnt:
            trained = (f"{learnt['training_images']} images ({learnt['defect_cells']} defect cells), whole-image"
                       if learnt.get("head") == "context" else f"{learnt['positives']} defect / {learnt['negatives']} normal patch features,")
            print(f"  learnt branch: {trained} blend weight {learnt['alpha']}" + (f" (chosen on {learnt['val_images']} generated validation defects)"
                                                       if learnt.get("alpha_from") == "validation" else ""))
    return 0


def checkpoint_mb(n_images: int, options: FitOptions) -> float:
    """An upper estimate of the checkpoint's size in MB (about twice the sizes measured): the weights (an EfficientNet-Lite's
    20 MB, or a CLIP weights file), the kept patches (the bank, or whole reference images), and each image's peer rows."""
    cells = (options.input_size // options.grid_stride) ** 2
    # bytes a kept patch takes at 1,024 channels: references are stored in float16 (lite0 has 472 channels)
    # (no more references than images: --references 1000 of 5 images was counted as 2 GB at 256 px)
    kept = min(options.references, n_images) * cells * 2 if options.references else options.coreset_ratio * n_images * cells * 4
    from model.backbones import clip_spec

    weights = 64.0
    if options.backbone.startswith("clip:"):
        path = Path(clip_spec(options.backbone)[1])
        weights += path.stat().st_size / 2**20 if path.is_file() else 0.0
    return weights + (kept * 1024 + n_images * (cells * 8 + 8192)) / 2**20


def check_room(out: Path, n_images: int, options: FitOptions) -> None:
    """--out's disk must hold the checkpoint: said in seconds, not after minutes of fitting (the write then failed
    in one line, the old checkpoint whole). Beside an old one, since that stays until the new one is written."""
    options.validate()  # a bad option is named as such, not as the room it would take (--size 100000: 86 GB)
    need = checkpoint_mb(n_images, options)
    where = next(p for p in (out, *out.parents) if p.exists())
    free = shutil.disk_usage(where).free / 2**20
    if free < need:
        raise InspectorError(f"--out {out}: {free:.0f} MB free on its disk, and a checkpoint of {n_images} images needs up to "
                             f"about {need:.0f} MB; free space or choose another folder")


def more_good(folders: list[str], dataset: Dataset) -> list[Sample]:
    """The images of each --add-good folder (not its subfolders), as training samples; none may be one of DATA's test
    images (by content: a copy elsewhere too), on which the model is calibrated and judged. What each leaves out (dead
    links, unread formats) goes to `dataset.notes`, said as DATA's own."""
    from model.data import Sample
    from model.hashing import sha256_file
    from model.images import FORMATS, broken_links_note, only_dead_links, scan_images
    from model.label_names import GOOD

    tests = set(dataset.test_digests) if folders else set()
    out = []
    # DATA's own good images: all of a plain folder (subfolders too), or an MVTec AD layout's train/good
    trained = dataset.root / "train" / GOOD if (dataset.root / "train").is_dir() else dataset.root
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise InspectorError(f"--add-good {folder}: {'is a file' if folder.exists() else 'no such folder'}; give a folder of good images")
        if folder.resolve() in (dataset.root.resolve(), trained.resolve()):
            raise InspectorError(f"--add-good {folder}: is the same folder as DATA ({dataset.root}), whose images are fitted "
                                 "already; give a folder of other good images, or drop --add-good")
        if folder.resolve().is_relative_to(trained.resolve()):
            raise InspectorError(f"--add-good {folder}: lies inside DATA's good images ({trained}), which are fitted already, "
                                 "its subfolders too; give a folder outside it, or drop --add-good")
        images = (scan := scan_images(folder)).images
        if dead := only_dead_links(scan):  # "no images in it", of files there, as links to a share gone
            raise InspectorError(f"--add-good {folder}: no images: {dead}")
        if not images:
            raise InspectorError(f"--add-good {folder}: no images ({FORMATS}) in it; give a folder of good images")
        if inside := [p for p in images if sha256_file(p) in tests]:
            raise InspectorError(f"--add-good {folder}: {inside[0].name} is one of DATA's test images (or a copy), which calibrate and "
                                 "judge the model; give images from elsewhere")
        out += [Sample(p) for p in images]
        dataset.notes += broken_links_note(scan, folder)  # a folder's .heic or dead links were left out unsaid, unlike DATA's
    return out


def _not_calibrated_on(types: dict, calibration: dict, dataset: Dataset) -> dict:
    """The --labels examples' scores, less those of DATA's test defects the threshold was calibrated on: their escapes are
    the threshold line's, and `--labels DATA` (as docs/types.md gives it) had the note count them again and say to
    calibrate on them by giving them as DATA's test/<type> folders, where they already were."""
    if calibration.get("escape") is None or not dataset.test:
        return types
    calibrated = {d[:16] for s, d in zip(dataset.test, dataset.test_digests, strict=True) if s.is_defect}
    kept = [score for score, image in zip(types.get("scores") or [], types.get("fitted_images") or [], strict=True)
            if image not in calibrated]
    return {**types, "scores": kept}


def refuse_labels_in_training(labels: str, labelled: list[Path], dataset) -> None:
    """Labelled defects that are also among the good training images (DATA's and --add-good's) would be learnt as
    normal, and they and their like then PASS: the same file (a plain labels folder given as the data too), or a copy
    of it, found by content (fit refused the same path only). Only good images of a labelled image's size are read."""
    from model.hashing import sha256_file

    by_size: dict[int, list[Path]] = {}
    for path in labelled:
        by_size.setdefault(path.stat().st_size, []).append(path)
    digests: dict[int, dict[str, Path]] = {}  # the labelled images of one size by content, read once a good one has that size
    inside = []
    for path in (s.path for s in dataset.train):
        size = path.stat().st_size
        if size in by_size:
            if size not in digests:
                digests[size] = {sha256_file(q): q for q in by_size[size]}
            if (same := digests[size].get(sha256_file(path))) is not None:
                inside.append((same, path))
    if inside:
        (same, path), n = inside[0], len(inside)
        copy = "" if same.resolve() == path.resolve() else f", the same image as {path}"
        raise InspectorError(f"--labels {labels}: {n} of its images are among the good training images ({same}{copy}); "
                             "give the labelled defects a folder of their own, outside the data folder, and no copy of them "
                             "among the good images")


def warn_locate(first: Path, options: FitOptions) -> None:
    """Say so (not an error: the model still works) when --locate cannot move the region within the first training
    image, which the region is given in."""
    from model.framing import locate_warning
    from model.images import read_image

    try:
        shape = read_image(first).shape[:2]
    except InspectorError:
        return  # fit names the image in its own error
    warning = locate_warning(options.roi, options.locate, shape, options.turn)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def _blend(value: str | None) -> float | None:
    """--blend: None -> the default weight, 'auto' -> None (choose on validation defects), else a number."""
    from model.defect_learning import BLEND

    if value is None:
        return BLEND
    if value == "auto":
        return None
    try:
        return float(value)
    except ValueError:
        raise InspectorError(f"--blend {value}: give the learnt map's weight, from 0 to 1, or 'auto'") from None
