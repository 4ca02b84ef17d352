"""Exports of stations fitted with fit's options: what the export says and does, as its checkpoint."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from tests.cli import cli

pytest.importorskip("onnxruntime")


def test_eval_of_an_export_reads_the_fit_options_and_type_fit_as_its_checkpoints(capsys, tiny_ckpt, tmp_path):
    """The export manifest left out the checkpoint's `options` and `types`: `eval EXPORT DATA --new-parts` was refused
    ("records no fit options"), and `eval EXPORT DATA` of a typed model on the images its type head was fitted on said
    nothing of it (0 of them; the checkpoint: all), nor did its validation report give the cross-validated accuracy."""
    from exporters.export import export
    from model.checkpoint import load_checkpoint, read_manifest, save_checkpoint
    from model.fit_types import fit_types
    from model.labels import load_labels
    from model.new_parts import options_from_manifest
    from tests.model.types_data import write_typed_mvtec

    data = write_typed_mvtec(tmp_path / "data", n_train=2, n_good=2, n_defect=3)
    net, _ = load_checkpoint(tiny_ckpt)
    report = fit_types(net, load_labels(data))  # fitted on the very test images eval is given
    keep = {k: v for k, v in read_manifest(tiny_ckpt).items() if k in ("options", "training", "calibration", "thresholds")}
    save_checkpoint(net, tmp_path / "typed.ckpt", {**keep, "types": asdict(report)})
    (done,) = export(tmp_path / "typed.ckpt", "onnx", tmp_path / "e")

    ckpt_manifest = read_manifest(tmp_path / "typed.ckpt")
    assert done.manifest["types"] == ckpt_manifest["types"] and done.manifest["options"] == ckpt_manifest["options"]
    assert done.manifest["environment"] == ckpt_manifest["environment"] and ckpt_manifest["environment"]["packages"]["torch"]
    assert options_from_manifest(done.manifest["options"], str(done.path)) == options_from_manifest(ckpt_manifest["options"], "ckpt")

    said = {}
    for name, model in (("ckpt", tmp_path / "typed.ckpt"), ("onnx", done.path)):
        code, out, err = cli(capsys, "eval", model, data, "--json", "--no-overlap")
        assert code == 0, err
        said[name] = json.loads(out)
    assert said["onnx"]["types_fitted_on_these_images"] == said["ckpt"]["types_fitted_on_these_images"] == 9


class _Mapped:
    """An engine that answers the scores and anomaly maps it is given, in the order compare() asks for them."""

    def __init__(self, scores, maps, threshold=5.0, pixel=1.0):
        from types import SimpleNamespace

        from model.framing import Framing

        self.scores, self.maps, self.at = np.asarray(scores, np.float32), np.asarray(maps, np.float32), 0
        self.meta = SimpleNamespace(input_size=(16, 16), runtime="scripted", framing=Framing(), image_threshold=threshold,
                                    pixel_threshold=pixel, class_names=())

    def infer(self, x):
        from types import SimpleNamespace

        s = slice(self.at, self.at + len(x))
        self.at += len(x)
        return SimpleNamespace(score=self.scores[s], amap=self.maps[s], type_probs=None)


def test_verify_says_where_an_export_places_defect_regions_otherwise(tmp_path):
    """For FP16 and INT8, --verify said AUROC, verdicts and types, but nothing of the regions `inspect` draws: an INT8
    export of a magnetic-tile model that drew one frayed edge's 39x25 px region as the whole image passed without a word."""
    from PIL import Image

    from exporters.verify import compare, format_report

    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.full((16, 16), i, np.uint8)).save(paths[-1])
    labels = np.array([False, True, True, True])
    scores = [1.0, 8.0, 9.0, 10.0]
    spot = np.zeros((4, 16, 16), np.float32)
    spot[1:, 2:6, 2:6] = 3.0  # a 4x4 px defect region in each defect image
    moved = spot.copy()
    moved[3] = 0.0
    moved[3, 10:14, 10:14] = 3.0  # the export draws the last one elsewhere
    moved[2, 2:6, 2:7] = 3.0  # and the one before a little wider: alike still (overlap 0.8)
    r = compare(_Mapped(scores, spot), _Mapped(scores, moved), paths, labels, "onnx-int8")
    assert r["passed"]  # said, not judged, as verdicts are
    assert r["regions"] == {"pixel_threshold": 1.0, "failed_images": 3, "differ": 1, "min_overlap": 0.0,
                            "examples": [f"{paths[3]} (overlap 0.00)"]}
    lines = format_report(r)
    assert f"  regions at pixel threshold 1.0000: of 3 images both fail, 1 placed otherwise (first: {paths[3]} (overlap 0.00))" in lines
    assert lines[-2].startswith("  verdicts at threshold")  # where it was
    r = compare(_Mapped(scores, spot), _Mapped(scores, spot), paths, labels, "onnx-fp16")
    assert r["regions"]["differ"] == 0 and "  regions at pixel threshold 1.0000: of 3 images both fail, all placed alike" in format_report(r)
