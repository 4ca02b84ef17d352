"""The defect-type head: fitting from a few labelled examples, `unknown`, the one graph (save/load, ONNX),
results and descriptions, eval metrics and k-shot curves. 64 px synthetic parts keep it quick."""

from __future__ import annotations

import json
import re
import shutil

import cv2
import numpy as np
import pytest
import torch

from inspector.commands.types_cli import labelled_pass_note
from model.errors import InspectorError
from tests.cli import assert_one_line_error, cli
from tests.model.types_data import TYPES, typed_defect, write_labels, write_typed_mvtec

SIZE = 64


@pytest.fixture(scope="module")
def labels_dir(tmp_path_factory):
    return write_labels(tmp_path_factory.mktemp("labels"), 6)


@pytest.fixture(scope="module")
def typed_ckpt(tiny_ckpt, labels_dir, tmp_path_factory):
    """The tiny anomaly checkpoint plus a type head fitted on 6 examples of each of 3 types."""
    from model.checkpoint import load_checkpoint, read_manifest, save_checkpoint
    from model.fit_types import fit_types
    from model.labels import load_labels

    net, manifest = load_checkpoint(tiny_ckpt)
    report = fit_types(net, load_labels(labels_dir))
    out = tmp_path_factory.mktemp("typed") / "typed.ckpt"
    keep = {k: v for k, v in read_manifest(tiny_ckpt).items() if k in ("options", "training", "calibration", "thresholds")}
    save_checkpoint(net, out, {**keep, "types": {"classes": report.classes, "region": report.region}})
    return out


def batch_of(kind: str, seeds: range) -> torch.Tensor:
    from model.images import preprocess

    return torch.from_numpy(np.stack([preprocess(typed_defect(kind, s)[0], (SIZE, SIZE)) for s in seeds]))


def test_names_held_out_defects_in_one_graph(typed_ckpt):
    from model.checkpoint import load_checkpoint

    net, manifest = load_checkpoint(typed_ckpt)
    assert manifest["net"]["class_names"] == sorted(TYPES) and float(net.types.mix) == 1.0  # map pooling: fitted on good images
    correct, total = 0, 0
    for k, kind in enumerate(sorted(TYPES)):
        with torch.no_grad():
            score, amap, probs = net(batch_of(kind, range(200, 206)))
        assert probs.shape == (6, len(TYPES) + 1) and amap.shape == (6, SIZE, SIZE)
        assert torch.allclose(probs.sum(dim=1), torch.ones(6), atol=1e-5)
        correct += int((probs[:, :-1].argmax(dim=1) == k).sum())
        total += 6
    assert correct / total >= 0.8  # unseen examples of each type (chance: 1/3)


def test_save_load_gives_identical_type_probs(typed_ckpt, tmp_path):
    from model.checkpoint import load_checkpoint, save_checkpoint

    net, manifest = load_checkpoint(typed_ckpt)
    x = batch_of("scratch", range(300, 302))
    save_checkpoint(net, tmp_path / "again", {k: manifest[k] for k in ("thresholds", "training")})
    again, _ = load_checkpoint(tmp_path / "again")
    with torch.no_grad():
        a, b = net(x)[2], again(x)[2]
    assert torch.equal(a, b) and not torch.equal(again.types.weight, torch.zeros_like(again.types.weight))


def test_onnx_export_carries_type_probs(typed_ckpt, tmp_path):
    """`inspector export` of a checkpoint with types: a third graph output (parity-checked against torch in
    export), and the ONNX engine names the same type as torch."""
    pytest.importorskip("onnxruntime")
    import onnx

    from exporters.export import export
    from inspector.api import Inspector
    from model.images import preprocess

    (done,) = export(typed_ckpt, "onnx", tmp_path / "x")
    assert [o.name for o in onnx.load(str(done.path)).graph.output] == ["score", "amap", "type_probs"] and done.parity < 1e-4
    img = typed_defect("blob", 500)[0]
    by_onnx, by_torch = Inspector.load(done.path), Inspector.load(typed_ckpt)
    assert by_onnx.engine.meta.class_names == tuple(sorted(TYPES))
    a, b = by_onnx.inspect(img), by_torch.inspect(img)
    assert a.defect_type == b.defect_type and a.type_confidence == pytest.approx(b.type_confidence, abs=1e-4)
    out = by_onnx.engine.infer(preprocess(img, (SIZE, SIZE))[None])
    assert out.type_probs.shape == (1, len(TYPES) + 1)


def test_whole_image_pooling_without_normal_reference(labels_dir):
    """No good images (e.g. NEU): an unfitted anomaly head, the type head pools the whole image."""
    from model.fit_types import fit_types
    from model.labels import load_labels
    from model.net import InspectorNet, NetConfig

    net = InspectorNet(NetConfig(input_size=(SIZE, SIZE))).eval()
    report = fit_types(net, load_labels(labels_dir))
    assert report.region == "image" and float(net.types.mix) == 0.0
    with torch.no_grad():
        probs = net(batch_of("blob", range(200, 206)))[2]
    assert (probs[:, :-1].argmax(dim=1) == sorted(TYPES).index("blob")).float().mean() >= 0.8
    with pytest.raises(InspectorError, match="needs a model fitted on good images"):
        from model.fit_types import TypeOptions

        fit_types(net, load_labels(labels_dir), TypeOptions(region="map"))


def test_unknown_type_and_switching_it_off(tiny_ckpt, tmp_path):
    """A checkerboard patch, never labelled, comes back `unknown` more often than held-out known types."""
    from model.checkpoint import load_checkpoint
    from model.fit_types import TypeOptions, fit_types
    from model.labels import load_labels

    labels = load_labels(write_labels(tmp_path / "l", 8))
    net, _ = load_checkpoint(tiny_ckpt)
    report = fit_types(net, labels, TypeOptions(unknown_rate=0.1))
    assert report.unknown_threshold is not None
    with torch.no_grad():
        novel = net(batch_of("grid", range(0, 8)))[2][:, -1]
        known = torch.cat([net(batch_of(k, range(200, 204)))[2][:, -1] for k in TYPES])
    assert float((novel >= 0.5).float().mean()) > float((known >= 0.5).float().mean())
    fit_types(net, labels, TypeOptions(unknown_rate=0.0))
    with torch.no_grad():
        assert float(net(batch_of("grid", range(0, 4)))[2][:, -1].max()) == 0.0


def test_prototype_classifier_and_bad_options(labels_dir, tiny_ckpt):
    from model.checkpoint import load_checkpoint
    from model.fit_types import TypeOptions, fit_types
    from model.labels import load_labels

    net, _ = load_checkpoint(tiny_ckpt)
    fit_types(net, load_labels(labels_dir), TypeOptions(classifier="prototype"))
    with torch.no_grad():
        probs = net(batch_of("stain", range(200, 204)))[2]
    assert (probs[:, :-1].argmax(1) == sorted(TYPES).index("stain")).float().mean() >= 0.75
    for bad, says in ((TypeOptions(classifier="svm"), "type classifier 'svm': choose one of"),
                      (TypeOptions(region="box"), "type region 'box': choose one of"),
                      (TypeOptions(unknown_rate=1.5), r"unknown rate 1.5: give a fraction in \[0, 1\)")):
        with pytest.raises(InspectorError, match=says):
            fit_types(net, load_labels(labels_dir), bad)


def test_fitting_checks_masks_against_their_images(tiny_ckpt, tmp_path):
    import cv2

    from model.checkpoint import load_checkpoint
    from model.fit_types import fit_types
    from model.labels import load_labels

    root = write_labels(tmp_path, 2, types=("blob", "scratch"))
    cv2.imwrite(str(root / "scratch" / "001_mask.png"), np.zeros((40, 40), np.uint8))
    net, _ = load_checkpoint(tiny_ckpt)
    with pytest.raises(InspectorError, match=r"scratch/001_mask\.png: 40x40 px but its image is 96x96"):
        fit_types(net, load_labels(root))


def test_name_defect_applies_the_unknown_cutoff():
    from inspector.decision import DecisionConfig, name_defect

    names = ("blob", "scratch")
    t, c, probs = name_defect(np.array([0.1, 0.6, 0.3]), names, DecisionConfig())
    assert (t, c) == ("scratch", pytest.approx(0.6 / 0.7, abs=1e-4)) and set(probs) == {"blob", "scratch", "unknown"}
    assert name_defect(np.array([0.1, 0.6, 0.3]), names, DecisionConfig(unknown_cutoff=0.25))[0] == "unknown"
    assert name_defect(None, names, DecisionConfig()) == (None, None, {})
    # NaN named the first type at confidence NaN (invalid JSON in the record): unknown, with no confidence
    assert name_defect(np.array([np.nan, np.nan, np.nan]), names, DecisionConfig()) == ("unknown", None, {})


def test_results_json_and_descriptions_carry_the_type(typed_ckpt, tmp_path, capsys):
    import cv2

    from inspector.api import Inspector

    insp = Inspector.load(typed_ckpt)
    img, _ = typed_defect("scratch", 400)
    path = tmp_path / "part.png"
    cv2.imwrite(str(path), img[..., ::-1])
    r = insp.inspect(path, serial="S1")
    assert r.verdict == "FAIL" and r.defect_type in (*TYPES, "unknown") and 0.0 <= r.type_confidence <= 1.0
    assert r.regions and all(reg.type == r.defect_type and reg.severity in ("low", "medium", "high") for reg in r.regions)
    rec = r.to_record()
    assert rec["defect_type"] == r.defect_type and abs(sum(rec["type_probs"].values()) - 1.0) < 1e-3
    from reports.i18n import translations
    from reports.render import translate_value

    for lang in ("en", "zh", "es"):  # the type's name as the reports give it (scratch: 划痕, rayón)
        shown = {"unknown": {"en": "unknown", "zh": "未知", "es": "desconocido"}}.get(r.defect_type, {}).get(lang)
        assert (shown or translate_value(translations(lang).gettext, r.defect_type)) in r.describe(lang)
    code, out, _ = cli(capsys, "inspect", typed_ckpt, path, "--json", "--lang", "es")
    record = json.loads(out)
    assert code == 0 and record["description"] == insp.inspect(path).describe("es")
    assert record["defect_type"] == r.defect_type and record["defects"][0]["type"] == r.defect_type


def test_pass_parts_carry_no_type(typed_ckpt, tiny_data):
    from inspector.api import Inspector

    r = Inspector.load(typed_ckpt).with_thresholds(image=1e9).inspect(tiny_data / "test" / "good" / "000.png")
    assert r.verdict == "PASS" and r.defect_type is None and r.to_record()["type_probs"] == {}


def test_cli_fit_with_labels_then_eval_reports_type_metrics(tmp_path, capsys):
    data = write_typed_mvtec(tmp_path / "data")
    ckpt = tmp_path / "m.ckpt"
    code, _, _ = cli(capsys, "fit", data, "--out", ckpt, "--size", SIZE, "--coreset", "0.25", "--labels", data, "--synth", "0", "--json")
    assert code == 0
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert manifest["net"]["class_names"] == sorted(TYPES) and manifest["types"]["counts"] == dict.fromkeys(sorted(TYPES), 6)
    # the labelled images' scores are kept, as inspection scores them (here the same 18 the threshold was calibrated on)
    assert sorted(manifest["types"]["scores"]) == pytest.approx(sorted(manifest["calibration_scores"]["defect"]), abs=1e-4)
    assert labelled_pass_note(manifest["types"], manifest["thresholds"]["image"]) is None  # all 18 fail: nothing to say
    note = labelled_pass_note(manifest["types"], sorted(manifest["types"]["scores"])[3] + 1e-9)
    assert note.startswith("4 of the 18 labelled defect images (--labels) score below the threshold") and "would PASS" in note
    code, out, _ = cli(capsys, "eval", ckpt, data, "--json")
    report = json.loads(out)
    assert code == 0 and report["type_accuracy"] >= 0.8  # fitted on these images: a sanity check of the plumbing
    assert report["types_fitted_on_these_images"] == 18 == report["n_defect"]  # and eval says so (it did not)
    code, out, _ = cli(capsys, "eval", ckpt, data)
    assert "on the 18 defect images of the model's types (the type head was fitted on 18 of the 18 defect images)" in out
    fresh = write_typed_mvtec(tmp_path / "fresh")
    for kind in TYPES:  # other defects of the same kinds in place of the fitted ones (their masks do not matter here)
        for i in range(100, 106):
            cv2.imwrite(str(fresh / "test" / kind / f"{i:03d}.png"), typed_defect(kind, 300 + i)[0][..., ::-1])
    assert json.loads(cli(capsys, "eval", ckpt, fresh, "--json")[1])["types_fitted_on_these_images"] == 0
    assert set(report["type_confusion"]) == set(TYPES) and sum(sum(r.values()) for r in report["type_confusion"].values()) == 18
    assert 0.0 <= report["type_macro_f1"] <= 1.0
    # a type the model does not know: left out of the metrics, and said (silently before)
    (fresh / "test" / "dent").mkdir()
    cv2.imwrite(str(fresh / "test" / "dent" / "000.png"), typed_defect(TYPES[0], 900)[0][..., ::-1])
    code, out, _ = cli(capsys, "eval", ckpt, fresh, "--no-overlap")
    assert code == 0 and "on the 18 defect images of the model's types" in out
    assert re.search(r"types the model does not know, left out of those: dent 1; \d+% of them named unknown", out)
    for kind in TYPES:
        shutil.rmtree(fresh / "test" / kind)
    code, out, _ = cli(capsys, "eval", ckpt, fresh, "--no-overlap")  # "type accuracy None, macro F1 None" before
    assert code == 0 and f"type accuracy: none of the defect images is of a type the model names ({', '.join(sorted(TYPES))})" in out


def test_eval_shots_learning_curve_and_holdout(labels_dir, capsys):
    code, out, _ = cli(capsys, "eval", "efficientnet-lite0", labels_dir, "--shots", "3", "--seeds", "2", "--size", SIZE,
                       "--holdout", "--json")
    report = json.loads(out)
    assert code == 0 and report["region"] == "image" and len(report["per_seed"]) == 2
    assert report["type_accuracy"] >= 0.7 and sum(report["type_confusion"]["blob"].values()) == 2 * 3
    assert set(report["holdout"]["per_type"]) == set(TYPES)
    code, out, _ = cli(capsys, "eval", "efficientnet-lite0", labels_dir, "--shots", "all", "--folds", "3", "--seeds", "1",
                       "--size", SIZE, "--json")
    assert code == 0 and json.loads(out)["folds"] == 3 and json.loads(out)["shots"] == "all" and report["shots"] == 3  # "3" before
    rc, _, err = cli(capsys, "eval", "efficientnet-lite0", labels_dir, "--shots", "9", "--size", SIZE)
    assert_one_line_error(rc, err, "--shots 9")  # too few images
    rc, _, err = cli(capsys, "eval", "efficientnet-lite0", labels_dir, "--shots", "all", "--folds", "50", "--size", SIZE)
    assert_one_line_error(rc, err, "--shots all with --folds 50 needs at least 50 per type; lower --folds")  # --folds unnamed before


def test_cli_fit_with_bad_labels_is_one_clear_error(tiny_data, tmp_path, capsys):
    from inspector.cli import main

    (tmp_path / "crack").mkdir()
    assert main(["fit", str(tiny_data), "--out", str(tmp_path / "x"), "--size", str(SIZE), "--labels", str(tmp_path)]) == 2
    assert "crack: no images" in capsys.readouterr().err


def _one_type(root):
    write_labels(root, 3, types=("blob",))


def _unknown_folder(root):
    import shutil

    write_labels(root, 3, types=("blob", "scratch"))
    shutil.move(root / "scratch", root / "unknown")


def _capital_unknown_folder(root):
    import shutil

    write_labels(root, 3, types=("blob", "scratch"))
    shutil.move(root / "scratch", root / "Unknown")


def _blank_folder(root):
    import shutil

    write_labels(root, 3, types=("blob", "scratch"))
    shutil.move(root / "scratch", root / " ")


def _wrong_mask(root):
    import cv2

    write_labels(root, 3, types=("blob", "scratch"))
    cv2.imwrite(str(root / "scratch" / "001_mask.png"), np.zeros((40, 40), np.uint8))


def _undecodable(root):
    write_labels(root, 3, types=("blob", "scratch"))
    (root / "blob" / "zz.png").write_bytes(b"not a png")


@pytest.mark.parametrize("make, extra, message", [
    (_one_type, [], "one defect type (blob); naming types needs examples of at least two"),  # all `unknown` before
    (_unknown_folder, [], "a type may not be called 'unknown'"),
    (_wrong_mask, [], "scratch/001_mask.png: 40x40 px but its image is"),
    (_undecodable, [], "zz.png: cannot be decoded"),
    (lambda root: write_labels(root, 3, types=("blob", "scratch")), ["--unknown-rate", "1.5"], "unknown rate 1.5"),
    (lambda root: write_labels(root, 3, types=("blob", "scratch")), ["--types", "blob"], "--types blob differs from the type folders"),
    (None, ["--unknown-rate", "0.1"], "--unknown-rate 0.1: applies only when naming defect types"),  # silently ignored before
    (None, ["--type-classifier", "prototype"], "--type-classifier prototype: applies only"),
    # zero-shot names: before, the first only after the anomaly fit; the rest fitted silently
    (None, ["--types", "crack,stain"], "naming defects from words needs the clip backbone"),
    (None, ["--types", ",", "--backbone", "clip:ViT-S-32:random"], "--types ',': no type names"),
    (None, ["--types", "crack", "--backbone", "clip:ViT-S-32:random"], "one type; naming types needs at least two"),
    (None, ["--types", "crack,crack", "--backbone", "clip:ViT-S-32:random"], "crack given twice"),
    (None, ["--types", "crack,good", "--backbone", "clip:ViT-S-32:random"], "'good' is not a defect type"),
    (None, ["--types", "crack,Unknown", "--backbone", "clip:ViT-S-32:random"], "'Unknown' is not a defect type"),  # taken before
    (None, ["--types", "crack,anomaly", "--backbone", "clip:ViT-S-32:random"], "'anomaly' is not a defect type"),
    (None, ["--types", "crack,stain", "--backbone", "clip"], "unknown backbone 'clip'"),  # "needs the clip backbone" before
    (_capital_unknown_folder, [], "a type may not be called 'unknown', in any case"),
    # a type shown as a blank in every result and table before
    (_blank_folder, [], "the type folder ' ' has no name to show"),
    (None, ["--types", "crack,_", "--backbone", "clip:ViT-S-32:random"], "'_' has no name to show"),
    (None, ["--types", "crack,stain", "--backbone", "clip:ViT-S-32:random", "--unknown-rate", "0.2"], "--unknown-rate 0.2: applies only with --labels"),
])
def test_bad_labels_and_type_options_fail_before_the_anomaly_fit(tiny_data, tmp_path, capsys, monkeypatch, make, extra, message):
    import model.fit
    from tests.cli import assert_one_line_error

    def no_fit(*args, **kwargs):
        raise AssertionError("the anomaly fit ran before the labels were checked")

    monkeypatch.setattr(model.fit, "fit", no_fit)
    labels = ["--labels", tmp_path / "labels"] if make else []
    if make:
        make(tmp_path / "labels")
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "x", "--size", SIZE, "--synth", "0", *labels, *extra)
    assert_one_line_error(rc, err, message)
    assert not (tmp_path / "x" / "manifest.json").exists()


@pytest.mark.parametrize("types, holdout, message", [(("blob",), False, "1 defect type(s) (blob); --shots needs at least 2"),
                                                     (("blob", "scratch"), True, "--shots --holdout needs at least 3")])
def test_eval_shots_needs_types_to_tell_apart(tmp_path, capsys, types, holdout, message):
    from tests.cli import assert_one_line_error

    root = write_labels(tmp_path / "labels", 3, types=types)
    rc, _, err = cli(capsys, "eval", "efficientnet-lite0", root, "--shots", "1", "--size", SIZE, *(["--holdout"] if holdout else []))
    assert_one_line_error(rc, err, message)  # a traceback, or every held-out type `unknown`, before


def test_labels_that_were_silently_wrong_are_said(tmp_path):
    """A misnamed mask learnt as an example, a mask or box file of no image dropped, images one folder down not found,
    the same image in two type folders, an empty test/<type> of an MVTec layout: each said now."""
    from model.labels import load_labels

    root = write_labels(tmp_path / "l", 3, types=("blob", "scratch"))
    shutil.copy(root / "blob" / "000_mask.png", root / "blob" / "009_mask.png")  # its image renamed away
    (root / "blob" / "017.xml").write_text("<annotation/>")
    shutil.copy(root / "blob" / "001_mask.png", root / "blob" / "001-mask.png")  # a mask misnamed
    notes = load_labels(root).notes
    assert any(n.endswith("009_mask.png: a mask of no image here (its image would be 009.<png|jpg|...>); it is not used") for n in notes)
    assert any(n.endswith("017.xml: a box file of no image here; it is not used") for n in notes)
    assert any("001-mask.png: named like a mask, but masks are named <image>_mask.png; it is used as one more blob image" in n for n in notes)
    assert load_labels(write_labels(tmp_path / "clean", 2, types=("blob", "scratch"))).notes == []
    shutil.copy(root / "blob" / "002.png", root / "scratch" / "102.png")
    with pytest.raises(InspectorError, match=r"102\.png and .*002\.png are the same image, labelled scratch and blob"):
        load_labels(root)
    nested = write_labels(tmp_path / "n", 2, types=("blob", "scratch"))
    (nested / "scratch" / "batch1").mkdir()
    for f in (nested / "scratch").glob("*.png"):
        f.rename(nested / "scratch" / "batch1" / f.name)
    with pytest.raises(InspectorError, match="scratch: no images; its subfolder batch1/ has some, but subfolders are not searched"):
        load_labels(nested)
    with pytest.raises(InspectorError, match="labels .*000.png: is a file"):
        load_labels(nested / "blob" / "000.png")
    mvtec = write_typed_mvtec(tmp_path / "m")
    (mvtec / "test" / "dent").mkdir()
    with pytest.raises(InspectorError, match=r"labels .*test/dent: no images"):  # left out unsaid before
        load_labels(mvtec)


def test_eval_reads_test_folders_as_fit_reads_type_names():
    from inspector.commands.types_eval import report_from_probs

    # a QA engineer's test/Crack and test/fray_ are the model's crack and fray (fit refuses them as two names of one type);
    # before, every one was left out as a type the model does not know and no type accuracy was given
    probs = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.3, 0.7, 0.0]])
    out = report_from_probs(["Crack", "fray_", "stain"], probs, ["crack", "fray"])
    assert (out["type_images_scored"], out["type_accuracy"], out["types_not_known"]) == (2, 1.0, {"stain": 1})
    assert out["type_confusion"]["crack"]["crack"] == 1
