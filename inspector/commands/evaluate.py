"""`inspector eval MODEL DATA`: image- and pixel-level metrics on a labelled dataset (MVTec AD layout)."""

from __future__ import annotations

import argparse

from inspector.commands.common import print_json, tqdm_bars
from model.errors import InspectorError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model on labelled test images", description=__doc__)
    p.add_argument("model", help="checkpoint directory or exported model")
    p.add_argument("data", help="MVTec AD layout folder with test/good and test/<defect type>")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)


def evaluate_model(model: str, data: str, device: str = "cpu", progress=None) -> dict:
    from inspector.engines import open_engine
    from model.data import load_dataset
    from model.evaluate import metrics_report, score_samples, threshold_report

    dataset = load_dataset(data, require_train=False)
    if not dataset.test:
        raise InspectorError(f"data {data}: no test/<type> folders with images; eval needs labelled test images")
    if not any(s.is_defect for s in dataset.test) or all(s.is_defect for s in dataset.test):
        raise InspectorError(f"data {data}: eval needs both test/good and at least one test/<defect> folder")
    engine = open_engine(model, device=device)

    def predict(batch):
        out = engine.infer(batch)
        return out.score, out.amap

    scored = score_samples(predict, dataset.test, size=engine.meta.input_size, progress=progress or tqdm_bars(), with_masks=True)
    report = metrics_report(dataset.test, scored)
    manifest = engine.meta.manifest
    report["fit_seconds"] = (manifest.get("training") or {}).get("fit_seconds")
    report["at_threshold"] = threshold_report(dataset.test, scored.scores, engine.meta.image_threshold)
    report["model"] = {"id": engine.meta.model_id, "backbone": engine.meta.backbone, "runtime": engine.meta.runtime,
                       "input_size": list(engine.meta.input_size)}
    return report


def run(args: argparse.Namespace) -> int:
    report = evaluate_model(args.model, args.data, args.device)
    if args.json:
        print_json(report)
        return 0
    print(f"{report['n_good']} good, {report['n_defect']} defect test images; model {report['model']['id']} ({report['model']['runtime']})")
    for key in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "fpr_at_recall_99", "fpr_at_recall_100", "tpr_at_fpr_1", "ms_per_image", "fit_seconds"):
        print(f"  {key:18} {report[key]}")
    for t, v in report["per_type_auroc"].items():
        print(f"  auroc[{t}]".ljust(20) + f" {v}")
    at = report["at_threshold"]
    print(f"  at threshold {at['threshold']}: false alarms {at['false_alarm_rate']}, escapes {at['escape_rate']}")
    return 0
