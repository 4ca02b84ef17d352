"""Defect-type options shared by `inspector fit` (--labels, --types) and `inspector eval` (--shots)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from inspector.cli import one_line
from inspector.commands.common import name_list, path_of
from model.errors import InspectorError


def add_fit_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("defect types (name each defect)")
    g.add_argument("--labels", metavar="LABELS_DIR", type=path_of("labels folder"),
                   help="labelled defects: <type>/ folders of images (optional <id>_mask.png or VOC <id>.xml beside each), "
                        "or an MVTec layout's test/<type> folders")
    g.add_argument("--types", default="", metavar="A,B,..", help="clip backbone without --labels: name these types from words alone (default: none)")
    g.add_argument("--part", default=None, help="what the part is, for CLIP prompts (e.g. 'magnetic tile'; default 'metal part')")
    g.add_argument("--type-classifier", choices=("logreg", "prototype"), default=None, help="classifier on the pooled features (default logreg)")
    g.add_argument("--unknown-rate", type=float, default=None,
                   help="share of known-type defects allowed to come back `unknown` (sets its threshold; 0: never unknown; default 0.05)")


def load_type_labels(args: argparse.Namespace):
    """Read and check --labels (every image and its mask or boxes) and the type options before the (long)
    anomaly fit, so that bad ones fail at once; -> the labels, or None without --labels."""
    names = name_list(args.types)
    if args.types.strip() and not names:
        raise InspectorError(f"--types {args.types!r}: no type names; give them comma-separated, e.g. crack,scratch")
    if not args.labels and not names:
        for flag, value in (("--part", args.part), ("--type-classifier", args.type_classifier), ("--unknown-rate", args.unknown_rate)):
            if value is not None:
                raise InspectorError(f"{flag} {value}: applies only when naming defect types, with --labels (or --types and a clip backbone)")
        return None
    type_options(args).validate()
    if not args.labels:  # zero-shot: the type names are all there is
        _check_zero_shot(names, args)
        return None
    if args.part is not None and not str(getattr(args, "backbone", "")).startswith("clip:"):  # ignored, unsaid, before
        raise InspectorError(f"--part {args.part}: words for CLIP prompts, which only the clip backbone (clip:<model>:<weights>) "
                             "has; leave it out with this backbone")
    from model.labels import check_images, load_labels

    labels = load_labels(args.labels)
    if len(labels.types) < 2:
        raise InspectorError(f"labels {args.labels}: one defect type ({labels.types[0]}); naming types needs examples of at least two "
                             "to tell apart: add another type's folder, or leave --labels out")
    if names and sorted(names) != labels.types:
        raise InspectorError(f"--types {','.join(names)} differs from the type folders in {args.labels} ({', '.join(labels.types)}); "
                             "leave --types out with --labels")
    check_images(labels, None if getattr(args, "locate", None) else getattr(args, "roi", None))  # a located region moves
    for note in labels.notes:
        print(one_line(f"note: {note}"), file=sys.stderr)
    return labels


def _check_zero_shot(names: list[str], args: argparse.Namespace) -> None:
    from model.backbones import check_backbone_name
    from model.label_names import RESERVED, type_words

    check_backbone_name(str(args.backbone))  # `--backbone clip`: that, not "needs the clip backbone", is the mistake
    if not str(args.backbone).startswith("clip:"):
        raise InspectorError(f"--types {args.types}: naming defects from words needs the clip backbone (clip:<model>:<weights>); "
                             "with this backbone give labelled examples with --labels")
    # CLIP's tokenizer lowercases, and folder names become words: "Crack,crack" or "pitted_surface,pitted surface" gave two
    # types with one prompt, each named at 50 % on every part
    said = [type_words(n) for n in names]
    twice = sorted({n for n, w in zip(names, said, strict=True) if said.count(w) > 1})
    reserved = [n for n, w in zip(names, said, strict=True) if w in RESERVED]  # "Unknown", "unknown_" beside `unknown`
    blank = [n for n, w in zip(names, said, strict=True) if not w]  # "_": an empty prompt, a type shown as a blank
    if blank or twice or reserved or len(names) < 2:
        why = (f"{blank[0]!r} has no name to show (only _)" if blank
               else f"{', '.join(twice)} given twice (prompts read names in lower case, _ as a space)" if twice
               else f"{reserved[0]!r} is not a defect type" if reserved
               else "one type; naming types needs at least two to tell apart")
        raise InspectorError(f"--types {args.types}: {why}")
    for flag, value in (("--type-classifier", args.type_classifier), ("--unknown-rate", args.unknown_rate)):
        if value is not None:
            raise InspectorError(f"{flag} {value}: applies only with --labels (types named from words alone have no classifier "
                                 "or `unknown` threshold to fit)")


def type_options(args: argparse.Namespace):
    from model.fit_types import TypeOptions

    options = TypeOptions(classifier=args.type_classifier or "logreg")
    if args.unknown_rate is not None:
        options.unknown_rate = args.unknown_rate
    return options


def fit_types_from_args(net, args: argparse.Namespace, progress, labels=None) -> dict[str, Any] | None:
    """Add a type head to a fitted net from --labels / --types; -> the manifest's `types` section (None: no head)."""
    from dataclasses import asdict

    names = name_list(args.types)
    if not args.labels and not names:
        return None
    from model.fit_types import fit_types, fit_zero_shot
    from model.prompts import DEFAULT_PART, text_weights

    part = args.part or DEFAULT_PART
    is_clip = hasattr(net.backbone, "encode_text")
    if not args.labels:
        return asdict(fit_zero_shot(net, names, text_weights(net.backbone, names, part))) | {"part": part}
    labels = labels or load_type_labels(args)
    tw = text_weights(net.backbone, labels.types, part) if is_clip else None
    report = asdict(fit_types(net, labels, type_options(args), progress=progress, text_weights=tw))
    return report | ({"part": part} if is_clip else {})


def labelled_pass_note(types: dict[str, Any], threshold: float) -> str | None:
    """How many of the --labels examples, all defects, score under the image threshold and would PASS: --labels names
    types and sets no threshold, and a fit whose threshold passed 14 of its 18 labelled defects said nothing of it."""
    scores = [s for s in types.get("scores") or [] if s is not None]
    passing = sum(s < threshold for s in scores)
    if not passing:
        return None
    return (f"{passing} of the {len(scores)} labelled defect images (--labels) score below the threshold {threshold:.4g} and would "
            "PASS: --labels names defect types but sets no threshold; to calibrate on such defects, give them as DATA's "
            "test/<type> folders (MVTec AD layout), or set one with `inspector threshold`")


def describe_fit(types: dict[str, Any]) -> str:
    counts = ", ".join(f"{t} {n}" for t, n in types["counts"].items())
    unk = types.get("unknown_threshold")
    extra = f"; cross-validated accuracy {types['cv_accuracy']:.3f}" if types.get("cv_accuracy") is not None else ""
    single = [t for t, n in types["counts"].items() if n < 2]
    off = ("`unknown` off: named from words, with no examples to set its threshold" if not any(types["counts"].values())
           else f"`unknown` off: {single[0]} has one example, and it needs 2 of each type" if single else "`unknown` off")
    return (f"  defect types ({types['region']} pooling): {counts}{extra}; "
            + ("`unknown` named for defects unlike these types" if unk is not None else off) + (f", prompt weight {types['text_mix']}" if types.get("text_mix") is not None else ""))
