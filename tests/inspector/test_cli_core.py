"""`inspector fit / inspect / eval / threshold`: happy paths with --json, and every bad input ending in one
line on stderr with exit code 2 (in-process for speed; a few through a real process to see the exit code)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from model.images import FORMATS
from tests.cli import assert_one_line_error, cli


def console_script() -> list[str]:
    """The installed `inspector` entry point next to this interpreter, else `python -m inspector`."""
    script = Path(sys.executable).with_name("inspector")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "inspector"]


def run_process(*argv, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*console_script(), *map(str, argv)], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def good_only_ckpt(tiny_data, tmp_path_factory) -> tuple[Path, dict]:
    """`inspector fit` through the real console script on a plain folder of good images."""
    root = tmp_path_factory.mktemp("cli_fit")
    plain = root / "good_parts"
    plain.mkdir()
    for p in sorted((tiny_data / "train" / "good").iterdir())[:6]:
        shutil.copy(p, plain / p.name)
    proc = run_process("fit", plain, "--out", root / "good.ckpt", "--size", 64, "--coreset", 0.5, "--no-position-norm", "--synth", 0, "--json",
                       cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "good.ckpt", json.loads(proc.stdout)


# ---- happy paths -----------------------------------------------------------------------------------


def test_fit_json_and_good_only_calibration(good_only_ckpt):
    ckpt, summary = good_only_ckpt
    assert (ckpt / "manifest.json").is_file() and (ckpt / "model.safetensors").is_file()
    assert summary["n_images"] == 6 and summary["bank_size"] > 0
    assert summary["calibration"]["policy"]["kind"] == "far"  # no defects in a plain folder
    assert "6 good calibration images cannot resolve a 0.01 false-alarm target" in summary["calibration"]["note"]
    assert set(summary["thresholds"]) >= {"image", "pixel"}
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert manifest["net"]["position_norm"] is False and manifest["options"]["position_norm"] is False
    assert manifest["net"]["position_map"] is False  # nothing to show it by
    assert manifest["net"]["neighbours"] == manifest["options"]["neighbours"] == 3


def test_fit_with_references(good_only_ckpt):
    ckpt, _ = good_only_ckpt
    plain = ckpt.parent / "good_parts"
    proc = run_process("fit", plain, "--out", ckpt.parent / "ref.ckpt", "--size", 64, "--references", 4, "--ref-k", 2,
                       "--ref-radius", 0, "--no-peer-position", "--no-position-map", cwd=ckpt.parent)
    assert proc.returncode == 0, proc.stderr
    assert "4 reference images" in proc.stdout
    manifest = json.loads((ckpt.parent / "ref.ckpt" / "manifest.json").read_text())
    net = manifest["net"]
    assert (net["references"], net["bank_size"], net["ref_k"], net["ref_radius"]) == (4, 0, 2, 0)
    assert net["peers"] == 5 and net["position_norm"] and not net["peer_position"] and not manifest["options"]["peer_position"]
    assert not net["position_map"] and not manifest["options"]["position_map"]
    assert net["neighbours"] == manifest["options"]["neighbours"] == 1  # references match the nearest patch only


def test_inspect_folder_json_with_overlays(capsys, tiny_ckpt, tiny_data, tmp_path, monkeypatch):
    import model.images

    decoded = []
    real = model.images._decode
    monkeypatch.setattr(model.images, "_decode", lambda data, *a: decoded.append(1) or real(data, *a))
    out = tmp_path / "overlays"
    rc, stdout, err = cli(capsys, "inspect", tiny_ckpt, tiny_data / "test", "--json", "--overlays", out)
    assert rc == 0, err
    assert len(decoded) == 8  # each file decoded once (twice before: for the overlay, then for scoring)
    doc = json.loads(stdout)
    assert doc["summary"]["images"] == doc["summary"]["inspected"] == 8 and doc["errors"] == []
    by_source = {Path(r["source"]).relative_to(tiny_data / "test").as_posix(): r for r in doc["results"]}
    assert all(by_source[f"blob/{i:03d}.png"]["verdict"] == "FAIL" for i in range(4))  # escape-calibrated on them
    for rec in doc["results"]:
        png = Path(rec["images"]["overlay"])
        assert png.is_relative_to(out) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = cv2.imread(str(png))
        assert img is not None and img.shape == (96, 96, 3)  # drawn on the original image
    assert (out / "blob" / "000_overlay.png").is_file()  # the folder structure is kept


def test_overlays_inside_the_inspected_folder_are_not_inspected_on_the_next_run(capsys, tiny_ckpt, tiny_data, tmp_path):
    parts = shutil.copytree(tiny_data / "test", tmp_path / "parts")
    n = len(list(parts.rglob("*.png")))
    for _ in range(2):
        rc, stdout, err = cli(capsys, "inspect", tiny_ckpt, parts, "--json", "--overlays", parts / "overlays")
        assert rc == 0, err
        assert json.loads(stdout)["summary"]["inspected"] == n
    assert len(list((parts / "overlays").rglob("*.png"))) == n and not list(parts.rglob("*_overlay_overlay.png"))
    rc, stdout, _ = cli(capsys, "inspect", tiny_ckpt, parts / "good", "--overlays", parts / "overlays")  # the text says where each went
    said = [line.split("overlay ", 1)[1] for line in stdout.splitlines() if line.strip().startswith("overlay ")]
    assert rc == 0 and len(said) == len(list((parts / "good").glob("*.png"))) and all(Path(s).is_file() for s in said)


def test_one_serial_for_several_images_is_refused(capsys, tiny_ckpt, tiny_data):
    rc, stdout, err = cli(capsys, "inspect", tiny_ckpt, tiny_data / "test" / "good", "--serial", "P-7")
    assert_one_line_error(rc, err, "--serial P-7: names one part, and 4 images were given")
    assert stdout == ""


def test_images_sharing_a_name_but_not_a_suffix_get_an_overlay_each(capsys, tiny_ckpt, tiny_data, tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    shutil.copy(tiny_data / "test" / "blob" / "000.png", parts / "part1.png")
    cv2.imwrite(str(parts / "part1.jpg"), cv2.imread(str(tiny_data / "test" / "good" / "000.png")))
    shutil.copy(tiny_data / "test" / "good" / "001.png", parts / "part1_png.png")  # its overlay name was part1.png's too
    rc, stdout, err = cli(capsys, "inspect", tiny_ckpt, parts, "--json", "--overlays", tmp_path / "ov")
    assert rc == 0, err
    overlays = {Path(r["source"]).name: Path(r["images"]["overlay"]).name for r in json.loads(stdout)["results"]}
    assert overlays == {"part1.jpg": "part1_jpg_overlay.png", "part1.png": "part1_png_overlay.png", "part1_png.png": "part1_png_2_overlay.png"}
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == sorted(overlays.values())


def test_inspect_several_files_and_folders(capsys, tiny_ckpt, tiny_data, tmp_path):
    blob, good = tiny_data / "test" / "blob", tiny_data / "test" / "good"
    files = sorted(blob.glob("*.png"))[:2]  # as a shell expands blob/*.png
    out = tmp_path / "overlays"
    rc, stdout, err = cli(capsys, "inspect", tiny_ckpt, *files, good, files[0], "--json", "--overlays", out)
    assert rc == 0, err
    doc = json.loads(stdout)
    sources = [Path(r["source"]) for r in doc["results"]]
    assert sources[:2] == files and len(sources) == len(set(sources)) == doc["summary"]["images"] == 2 + len(list(good.glob("*.png")))
    # overlays keep their paths below the deepest folder holding every target, so same-named images do not collide
    assert (out / "blob" / "000_overlay.png").is_file() and (out / "good" / f"{sorted(good.glob('*.png'))[0].stem}_overlay.png").is_file()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    rc, stdout, err = cli(capsys, "inspect", tiny_ckpt, *files, broken)
    assert_one_line_error(rc, err, "broken.png: cannot be decoded")
    assert stdout.splitlines()[-1].endswith("FAIL, 1 not inspected (see the errors above)")  # "unreadable" also counted readable ones
    # a missing one is named before anything is inspected
    rc, stdout, err = cli(capsys, "inspect", tiny_ckpt, files[0], tmp_path / "nope.png")
    assert_one_line_error(rc, err, "nope.png: no such file or folder")
    assert stdout == ""


def test_masks_in_an_inspected_folder_are_named_not_skipped_silently(capsys, tiny_ckpt, tiny_data, tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    for name in ("a.png", "a_mask.png", "face_mask.png"):
        shutil.copy(tiny_data / "test" / "good" / "000.png", parts / name)
    rc, stdout, err = cli(capsys, "inspect", tiny_ckpt, parts, "--json")
    assert rc == 0 and json.loads(stdout)["summary"]["images"] == 1
    assert "note: 2 image(s) in " in err and "named *_mask" in err and "give them by name" in err  # nothing said before
    rc, stdout, err = cli(capsys, "inspect", tiny_ckpt, parts / "face_mask.png", "--json")
    assert rc == 0 and json.loads(stdout)["verdict"] in ("PASS", "FAIL") and err == ""
    rc, _, err = cli(capsys, "inspect", tiny_ckpt, parts, "--overlays", parts)
    assert_one_line_error(rc, err, f"--overlays {parts}: holds the folder {parts} being inspected; write the overlays to another folder")
    assert cli(capsys, "inspect", tiny_ckpt, parts, "--overlays", parts / "ov")[0] == 0  # overlays written among the parts
    rc, stdout, err = cli(capsys, "inspect", tiny_ckpt, parts, "--json")  # a later run without --overlays: not parts
    assert rc == 0 and json.loads(stdout)["summary"]["images"] == 1
    assert "note: 1 image(s) in " in err and "named *_overlay (overlays of an earlier run, e.g. a_overlay.png)" in err
    shutil.copy(parts / "a.png", parts / "contact_sheet.png")
    assert json.loads(cli(capsys, "inspect", tiny_ckpt, parts, "--json")[1])["summary"]["images"] == 2  # a part of that name
    (parts / "labels.json").write_text(json.dumps({"generator": "inspector synth", "images": []}))
    rc, stdout, err = cli(capsys, "inspect", tiny_ckpt, parts, "--json")  # a synth output's: inspected with its defects before
    assert rc == 0 and json.loads(stdout)["summary"]["images"] == 1 and "the contact sheet of an `inspector synth` output" in err


def test_links_to_nothing_in_an_inspected_folder_are_said(capsys, tiny_ckpt, tiny_data, tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "linked").symlink_to(tiny_data / "test" / "good")
    (parts / "gone.png").symlink_to(tmp_path / "deleted.png")
    rc, stdout, err = cli(capsys, "inspect", tiny_ckpt, parts, "--json")
    assert rc == 0 and json.loads(stdout)["summary"]["images"] == len(list((tiny_data / "test" / "good").glob("*.png")))
    assert f"note: 1 link(s) in {parts} lead nowhere and were left out (e.g. {parts / 'gone.png'} -> " in err


def test_exit_code_says_whether_a_part_failed(capsys, tiny_ckpt, tiny_data):
    defect, good = tiny_data / "test" / "blob" / "000.png", tiny_data / "test" / "good" / "000.png"
    verdicts = {}
    for image in (defect, good):
        rc, stdout, _ = cli(capsys, "inspect", tiny_ckpt, image, "--json")
        verdicts[image] = json.loads(stdout)["verdict"]
        assert rc == 0  # without the flag a FAIL is an answer, not an error
    assert verdicts == {defect: "FAIL", good: "PASS"}
    assert cli(capsys, "inspect", tiny_ckpt, defect, "--exit-code")[0] == 1
    assert cli(capsys, "inspect", tiny_ckpt, good, "--exit-code")[0] == 0
    assert cli(capsys, "inspect", tiny_ckpt, good, defect, "--exit-code", "--json")[0] == 1
    rc, _, err = cli(capsys, "inspect", tiny_ckpt, good, tiny_data / "nope.png", "--exit-code")
    assert_one_line_error(rc, err, "nope.png: no such file or folder")


@pytest.mark.parametrize("json_out", [True, False])
def test_inspecting_a_folder_does_not_keep_each_result(capsys, tiny_ckpt, tiny_data, monkeypatch, json_out):
    """Each result holds a full-size map (48 MB at 12 MP): a folder of them filled memory before the last was printed."""
    import gc
    import weakref

    from inspector.api import Inspector

    inspect, alive = Inspector.inspect, []

    def tracked(self, image, **kw):
        gc.collect()
        alive.append(sum(ref() is not None for ref in refs))
        r = inspect(self, image, **kw)
        refs.append(weakref.ref(r))
        return r

    refs: list = []
    monkeypatch.setattr(Inspector, "inspect", tracked)
    rc, stdout, _ = cli(capsys, "inspect", tiny_ckpt, tiny_data / "test", *(["--json"] if json_out else []))
    assert rc == 0 and len(alive) == 8 and max(alive) <= 1, alive  # at most the one being printed


def test_inspect_single_image_json_and_text(capsys, tiny_ckpt, tiny_data):
    image = tiny_data / "test" / "blob" / "000.png"
    rc, stdout, _ = cli(capsys, "inspect", tiny_ckpt, image, "--json", "--serial", "P-7", "--lang", "en")
    assert rc == 0
    rec = json.loads(stdout)
    assert rec["verdict"] == "FAIL" and rec["serial"] == "P-7" and rec["defects"] and "P-7" in rec["description"]
    rc, stdout, _ = cli(capsys, "inspect", tiny_ckpt, image, "--threshold", "1e9")
    assert rc == 0 and stdout.startswith("PASS")


def test_eval_json(capsys, tiny_ckpt, tiny_data):
    rc, stdout, err = cli(capsys, "eval", tiny_ckpt, tiny_data, "--json")
    assert rc == 0, err
    report = json.loads(stdout)
    for key in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "fpr_at_recall_99", "fpr_at_recall_100", "tpr_at_fpr_1",
                "per_type_auroc", "n_good", "n_defect", "fit_seconds", "ms_per_image"):
        assert key in report and report[key] is not None, key
    assert (report["n_good"], report["n_defect"]) == (4, 4)
    assert report["image_auroc"] > 0.9 and list(report["per_type_auroc"]) == ["blob"]
    assert 0.0 <= report["aupro"] <= 1.0 and report["ms_per_image"] > 0
    at = report["at_threshold"]
    assert at["escape_rate"] == 0.0 and at["calibrated_on_these_images"]  # tiny_ckpt was calibrated on tiny_data's test/
    assert at["held_out"]["folds"] == 4 and at["held_out"]["policy"]["kind"] == "escape"
    assert 0.0 <= at["held_out"]["false_alarm_rate"] <= 1.0 and 0.0 <= at["held_out"]["escape_rate"] <= 1.0
    overlap = report["train_overlap"]  # the synthetic parts are all different
    assert (overlap["good_twins"], overlap["defect_twins"], overlap["pairs"]) == (0, 0, [])
    assert overlap["image_auroc_without_twins"] is None and overlap["pixel_auroc_without_twins"] is None
    px = report["at_pixel_threshold"]  # fit chose the pixel threshold by F1-max on the same test masks
    assert px["calibrated_on_these_images"] and px["held_out"]["folds"] == 4
    assert 0.0 < px["f1"] <= 1.0 and all(0.0 <= px["held_out"][k] <= 1.0 for k in ("precision", "recall", "f1"))
    assert report["image_quality"] == {"good": 0, "defect": 0, "causes": {}, "examples": []}  # no test image blamed on the camera


def test_eval_names_test_images_the_quality_check_would_warn_about(capsys, tiny_ckpt, tiny_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    cv2.imwrite(str(data / "test" / "good" / "dark.png"), np.zeros((96, 96, 3), np.uint8))
    rc, stdout, err = cli(capsys, "eval", tiny_ckpt, data, "--json", "--no-overlap")
    assert rc == 0, err
    quality = json.loads(stdout)["image_quality"]
    assert quality == {"good": 1, "defect": 0, "causes": {"dark": 1}, "examples": [{"file": str(data / "test" / "good" / "dark.png"), "cause": "dark"}]}
    rc, stdout, _ = cli(capsys, "eval", tiny_ckpt, data, "--no-overlap")
    assert "image quality: 1 of 9 test images would be warned about (dark 1; 1 good, 0 defective; first: " in stdout


def test_eval_report_shows_what_the_stored_threshold_does_on_these_images(capsys, tiny_ckpt, tiny_data, tmp_path):
    import base64
    import io

    from PIL import Image

    from model.data import load_dataset
    from model.hashing import labelled_set_sha256

    def validation(ckpt, out):
        rc, stdout, err = cli(capsys, "eval", ckpt, tiny_data, "--json", "--no-overlap", "--report", out, "--format", "html")
        assert rc == 0, err
        report = json.loads(stdout)
        html = Path(report["validation_report"]["html"]).read_text(encoding="utf-8")
        return report, {name: re.search(rf'<section[^>]*id="{name}".*?</section>', html, re.S).group(0)
                        for name in ("decision", "escapes", "false-alarms", "traceability")}

    report, html = validation(tiny_ckpt, tmp_path / "as_fitted")  # calibrated on these test images: no escape, and it says so
    assert report["at_threshold"]["escape_rate"] == 0.0 and "No defect image passed." in html["escapes"]
    assert 'id="calibrated-here"' in html["decision"] and '<div class="v" id="caught">4 / 4</div>' in html["decision"]
    assert re.search(r'id="policy">The threshold was chosen for at most [\d.]+% escapes', html["decision"])
    test = load_dataset(tiny_data).test
    assert labelled_set_sha256((s.path, s.defect_type) for s in test) in html["traceability"]

    lenient = shutil.copytree(tiny_ckpt, tmp_path / "lenient.ckpt")
    assert cli(capsys, "threshold", lenient, "--set", "1e9")[0] == 0  # now every part passes: each defect escapes
    report, html = validation(lenient, tmp_path / "lenient")
    assert report["at_threshold"]["escape_rate"] == 1.0 and '<div class="v" id="caught">0 / 4</div>' in html["decision"]
    assert "No good image failed." in html["false-alarms"] and 'id="calibrated-here"' not in html["decision"]
    assert "set by hand" in html["decision"] and report["at_threshold"]["policy"] is None
    uris = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', html["escapes"])
    assert len(uris) == 4 and html["escapes"].count('class="mono">test/<wbr>blob/<wbr>') == 4
    for uri in uris:  # each an overlay at the model's input size
        with Image.open(io.BytesIO(base64.b64decode(uri))) as im:
            assert im.size == (64, 64)


def test_eval_on_other_images_does_not_claim_in_sample_calibration(capsys, tiny_ckpt, tiny_data, tmp_path):
    other = shutil.copytree(tiny_data, tmp_path / "other")
    sorted((other / "test" / "good").iterdir())[0].unlink()
    rc, stdout, err = cli(capsys, "eval", tiny_ckpt, other, "--json")
    assert rc == 0, err
    report = json.loads(stdout)
    for at in (report["at_threshold"], report["at_pixel_threshold"]):
        assert at["calibrated_on_these_images"] is False and "held_out" not in at
    # but every image it has was among those the threshold was chosen on, and eval says so
    assert report["at_threshold"]["test_images_calibrated_on"] == report["n_good"] + report["n_defect"]
    assert "calibrated on 7 of these 7 images" in cli(capsys, "eval", tiny_ckpt, other)[1]
    ckpt = shutil.copytree(tiny_ckpt, tmp_path / "by-hand.ckpt")
    assert cli(capsys, "threshold", ckpt, "--set", "1.5")[0] == 0
    said = cli(capsys, "eval", ckpt, other)[1]  # a threshold set by hand was calibrated on nothing
    assert "at threshold 1.5 (set by hand): " in said and "calibrated on" not in said.split("at threshold")[1].splitlines()[0]


def test_a_failed_eval_leaves_no_report_folder_behind(capsys, tiny_ckpt, tmp_path):
    rc, _, err = cli(capsys, "eval", tiny_ckpt, tmp_path / "no_such_data", "--report", tmp_path / "new" / "qa")
    assert_one_line_error(rc, err, "no_such_data")
    assert (tmp_path / "new").is_dir() and not (tmp_path / "new" / "qa").exists()  # the folder it made for the report


def test_eval_of_a_model_that_records_no_calibration_does_not_call_it_uncalibrated(capsys, tiny_ckpt, tiny_data, tmp_path):
    """Exports made before their manifests carried `calibration` read as 'not calibrated on these images', so their
    in-sample rates were shown as honest ones."""
    from model.checkpoint import MANIFEST, write_manifest

    ckpt = shutil.copytree(tiny_ckpt, tmp_path / "old.ckpt")
    manifest = json.loads((ckpt / MANIFEST).read_text())
    manifest.pop("calibration")
    write_manifest(ckpt, {**manifest, "files": list(manifest["files"])})
    rc, stdout, err = cli(capsys, "eval", ckpt, tiny_data, "--json", "--no-overlap")
    assert rc == 0, err
    report = json.loads(stdout)
    for at in (report["at_threshold"], report["at_pixel_threshold"]):
        assert at["calibrated_on_these_images"] is None and "held_out" not in at
    rc, stdout, err = cli(capsys, "eval", ckpt, tiny_data, "--no-overlap")
    assert rc == 0 and stdout.count("does not record what it was calibrated on") == 2, err


def test_eval_without_masks_says_why_pixel_metrics_are_missing(capsys, tiny_ckpt, tiny_data, tmp_path):
    other = shutil.copytree(tiny_data, tmp_path / "other")
    shutil.rmtree(other / "ground_truth")
    rc, stdout, err = cli(capsys, "eval", tiny_ckpt, other, "--no-overlap")
    assert rc == 0, err
    n = json.loads(cli(capsys, "eval", tiny_ckpt, other, "--no-overlap", "--json")[1])["n_defect"]
    assert f"  pixel_auroc        - (none of the {n} defect images has a ground_truth mask)" in stdout.splitlines()
    rc, stdout, _ = cli(capsys, "eval", tiny_ckpt, other, "--no-overlap", "--json")
    assert json.loads(stdout)["pixel_auroc"] is None and json.loads(stdout)["image_auroc"] is not None
    shutil.copytree(tiny_data / "ground_truth", other / "ground_truth")
    next((other / "ground_truth").rglob("*.png")).unlink()  # one defect without its mask: left out of the pixel metrics, said
    stdout = cli(capsys, "eval", tiny_ckpt, other, "--no-overlap")[1]
    assert f"  note: pixel_auroc and aupro are on the {n - 1} defect images with a ground_truth mask; 1 has none and is left out" in stdout
    shutil.rmtree(other / "ground_truth")
    shutil.copytree(tiny_data / "ground_truth", other / "ground_truth")
    for mask in (other / "ground_truth").rglob("*.png"):  # masks there, each blank
        cv2.imwrite(str(mask), np.zeros_like(cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)))
    assert "  pixel_auroc        - (no defect pixels in ground_truth masks)" in cli(capsys, "eval", tiny_ckpt, other, "--no-overlap")[1].splitlines()


def test_eval_names_test_images_that_are_other_captures_of_training_images(capsys, tiny_ckpt, tiny_data, tmp_path):
    data = shutil.copytree(tiny_data, tmp_path / "data")
    part = cv2.imread(str(data / "train" / "good" / "003.png")).astype(np.float32)
    cv2.imwrite(str(data / "test" / "good" / "000.png"), np.clip(part * 0.8 + 20, 0, 255).astype(np.uint8))  # relit
    shutil.copy(data / "train" / "good" / "005.png", data / "test" / "blob" / "000.png")  # a "defect" that is a good part
    rc, stdout, err = cli(capsys, "eval", tiny_ckpt, data, "--json")
    assert rc == 0, err
    overlap = json.loads(stdout)["train_overlap"]
    pairs = {(Path(p["test"]).relative_to(data).as_posix(), Path(p["train"]).name) for p in overlap["pairs"]}
    assert pairs == {("test/good/000.png", "003.png"), ("test/blob/000.png", "005.png")}
    assert (overlap["good_twins"], overlap["defect_twins"]) == (1, 1)
    # without the "defect" that is a good part, the real blobs all outrank the good tiles left
    assert overlap["image_auroc_without_twins"] == 1.0 and 0.5 < overlap["pixel_auroc_without_twins"] <= 1.0
    rc, stdout, _ = cli(capsys, "eval", tiny_ckpt, data)
    assert rc == 0 and "1 good and 1 defect test images look like other captures" in stdout
    assert f"pixel AUROC {overlap['pixel_auroc_without_twins']}, closer to what new parts" in stdout
    assert "blob " + str(data / "test" / "blob" / "000.png") + " is like good training image" in stdout
    rc, stdout, _ = cli(capsys, "eval", tiny_ckpt, data, "--json", "--no-overlap")
    assert rc == 0 and "train_overlap" not in json.loads(stdout)
    (data / "train" / "good" / "007.png").write_bytes(b"not an image")  # the check is skipped, the metrics kept
    rc, stdout, err = cli(capsys, "eval", tiny_ckpt, data, "--json")
    report = json.loads(stdout)
    assert rc == 0 and "007.png" in report["train_overlap"]["skipped"] and report["image_auroc"] is not None, err


def test_eval_new_parts_refits_the_models_settings_on_held_out_training_parts(capsys, tiny_ckpt, tiny_data, tmp_path):
    rc, stdout, err = cli(capsys, "eval", tiny_ckpt, tiny_data, "--json", "--no-overlap", "--new-parts", "2")
    assert rc == 0, err
    new = json.loads(stdout)["new_parts"]
    assert (new["folds"], new["n_good"], new["n_defect"]) == (2, 12, 4) and 2 <= new["parts"] <= 12
    assert len(new["image_auroc_per_fold"]) == 2 and new["image_auroc"] == pytest.approx(np.mean(new["image_auroc_per_fold"]), abs=1e-4)
    assert new["image_auroc"] > 0.9  # the planted blobs stand out from held-out good parts too
    assert new["good_only_threshold"]["policy"] == {"kind": "far", "target": 0.01}  # the checkpoint's escape policy needs defects
    rc, stdout, _ = cli(capsys, "eval", tiny_ckpt, tiny_data, "--no-overlap", "--new-parts", "2")
    assert rc == 0 and f"new parts (2 folds over {new['parts']} training parts, 12 good images held out" in stdout
    assert "fitted from good images alone for 1.0% false alarms, each refit failed" in stdout
    observed = "/".join(f"{r:.1%}" for r in new["good_only_threshold"]["check"]["observed"])
    assert f"thresholds meant to fail 50%/20%/10%/5% of good parts failed {observed} of the new ones" in stdout
    # more folds than parts (12 images here, fewer parts) shows only once the parts are found: the metrics are kept
    folds = str(new["parts"] + 1)
    rc, stdout, _ = cli(capsys, "eval", tiny_ckpt, tiny_data, "--json", "--no-overlap", "--new-parts", folds)
    report = json.loads(stdout)
    assert new["parts"] < 12 and rc == 0 and report["image_auroc"] is not None
    assert f"{new['parts']} distinct part(s)" in report["new_parts"]["skipped"]
    assert f"--new-parts {folds} needs at least {folds}" in report["new_parts"]["skipped"]
    rc, _, err = cli(capsys, "eval", tiny_ckpt, tiny_data, "--new-parts", "13")  # more folds than images: said at once
    assert_one_line_error(rc, err, "--new-parts 13 deals the training parts into 13 folds, and there are 12 training images")
    rc, _, err = cli(capsys, "eval", tiny_ckpt, tiny_data, "--new-parts", "1")
    assert rc == 2 and "--new-parts 1: give at least 2 folds" in err and len(err.strip().splitlines()) == 1
    no_train = shutil.copytree(tiny_data, tmp_path / "data")
    shutil.rmtree(no_train / "train")
    rc, _, err = cli(capsys, "eval", tiny_ckpt, no_train, "--new-parts")
    assert_one_line_error(rc, err, "--new-parts refits on train/good, which has no images")


def test_eval_with_both_checks_describes_the_images_once(capsys, tiny_ckpt, tiny_data, monkeypatch):
    import model.overlap as overlap

    passes, real = [], overlap.descriptors
    monkeypatch.setattr(overlap, "descriptors", lambda paths, *a, **k: passes.append(len(paths)) or real(paths, *a, **k))
    rc, stdout, err = cli(capsys, "eval", tiny_ckpt, tiny_data, "--json", "--new-parts", "2")
    report = json.loads(stdout)
    assert rc == 0 and "train_overlap" in report, err
    assert passes == [report["new_parts"]["n_good"] + report["n_good"] + report["n_defect"]]  # training and test images, one pass
    train = sorted((tiny_data / "train" / "good").iterdir())
    assert report["new_parts"]["parts"] == len(set(overlap.find_parts(train)))  # the same parts as a pass of their own


def test_threshold_show_set_and_recalibrate(capsys, tiny_ckpt, tiny_data, tmp_path):
    ckpt = shutil.copytree(tiny_ckpt, tmp_path / "t.ckpt")
    rc, stdout, _ = cli(capsys, "threshold", ckpt, "--json")
    shown = json.loads(stdout)
    assert rc == 0 and shown["previous"] is None and shown["policy"]["kind"] == "escape"
    assert shown["note"].startswith("4 defect calibration images cannot resolve a 0.01 escape target")
    rc, stdout, _ = cli(capsys, "threshold", ckpt)
    assert rc == 0 and "  note: 4 defect calibration images cannot resolve" in stdout

    rc, stdout, _ = cli(capsys, "threshold", ckpt, "--set", "1e6", "--json")
    assert rc == 0 and json.loads(stdout)["thresholds"]["image"] == 1e6 and json.loads(stdout)["note"] is None
    assert json.loads(stdout)["policy"] is None  # set by hand: no policy (the old one was still reported)
    rc, stdout, _ = cli(capsys, "threshold", ckpt, "--pixel", "1e6")
    assert rc == 0 and "exports made before keep the thresholds they were exported with" in stdout
    rc, stdout, _ = cli(capsys, "eval", ckpt, tiny_data, "--json", "--no-overlap")
    report = json.loads(stdout)  # neither threshold was calibrated on these images any more
    assert not report["at_threshold"]["calibrated_on_these_images"] and not report["at_pixel_threshold"]["calibrated_on_these_images"]
    rc, stdout, _ = cli(capsys, "inspect", ckpt, tiny_data / "test" / "blob" / "000.png", "--json")
    assert rc == 0 and json.loads(stdout)["verdict"] == "PASS"  # the re-sealed checkpoint loads and uses it

    rc, stdout, _ = cli(capsys, "threshold", ckpt / "manifest.json", "--far", "0.0", "--json")  # manifest path works too
    info = json.loads(stdout)
    assert rc == 0 and info["far_on_calibration"] == 0.0 and info["policy"] == {"kind": "far", "target": 0.0}
    assert info["note"].startswith("a 0 false-alarm target clears all 16 good calibration images")  # what "none" promises
    assert json.loads((ckpt / "manifest.json").read_text())["calibration"]["note"] == info["note"]  # the fit's escape note is gone
    assert json.loads((ckpt / "manifest.json").read_text())["thresholds"]["image"] == info["thresholds"]["image"]
    rc, stdout, _ = cli(capsys, "threshold", ckpt, "--set", "-1e6")  # every part FAILs: said, with the way out
    assert rc == 0 and (f"  note: this threshold fails 100.0% of the good calibration images; `inspector threshold {ckpt} --far 0.05` "
                        "would fail at most 5% of them") in stdout


@pytest.mark.parametrize("field, value", [
    ("calibration", ["escape", 0.01]), ("calibration", {"policy": {"kind": "escapes", "target": 0.01}}),
    ("calibration", {"policy": {"kind": "far", "target": "1%"}}), ("calibration_scores", [1.0, 2.0]),
    ("calibration_scores", {"good": "0.1, 0.2"}), ("calibration_scores", {"good": [0.1, None]}),
])
def test_threshold_on_a_resealed_malformed_calibration_names_the_field(capsys, tiny_ckpt, tmp_path, field, value):
    from model.checkpoint import write_manifest

    ckpt = shutil.copytree(tiny_ckpt, tmp_path / "t.ckpt")
    manifest = json.loads((ckpt / "manifest.json").read_text())
    write_manifest(ckpt, {**manifest, field: value, "files": list(manifest["files"])})  # resealed: it loads
    rc, _, err = cli(capsys, "threshold", ckpt, "--far", "0.05")
    assert_one_line_error(rc, err, f"checkpoint {ckpt}: manifest field {field}", "re-create it with `inspector fit`")


def test_threshold_that_cannot_be_written_keeps_the_checkpoint(capsys, tiny_ckpt, tmp_path):
    ckpt = shutil.copytree(tiny_ckpt, tmp_path / "t.ckpt")
    before = (ckpt / "manifest.json").read_text()
    (ckpt / f"manifest.json.{os.getpid()}.tmp").mkdir()  # where this process writes the new manifest first; a folder makes that fail, even as root
    rc, _, err = cli(capsys, "threshold", ckpt, "--set", "1e6")
    assert_one_line_error(rc, err, "t.ckpt", "cannot be written")
    assert (ckpt / "manifest.json").read_text() == before
    rc, stdout, _ = cli(capsys, "threshold", ckpt, "--json")
    assert rc == 0 and json.loads(stdout)["thresholds"]["image"] != 1e6


def test_threshold_policy_is_kept_even_where_the_threshold_stays(capsys, tiny_ckpt, tmp_path):
    ckpt = shutil.copytree(tiny_ckpt, tmp_path / "t.ckpt")
    rc, stdout, _ = cli(capsys, "threshold", ckpt, "--json")
    before = json.loads(stdout)
    assert rc == 0 and before["policy"] == {"kind": "escape", "target": 0.01}
    # 4 calibration defects cannot tell a 1 % from a 20 % escape target: the same threshold, another policy
    rc, stdout, _ = cli(capsys, "threshold", ckpt, "--escape", "0.2", "--json")
    assert rc == 0 and json.loads(stdout)["thresholds"] == before["thresholds"]
    rc, stdout, _ = cli(capsys, "threshold", ckpt, "--json")
    assert rc == 0 and json.loads(stdout)["policy"] == {"kind": "escape", "target": 0.2}
    rc, stdout, _ = cli(capsys, "threshold", ckpt, "--escape", "0.1")  # the text says the manifest changed ("unchanged" alone before)
    assert rc == 0 and stdout.splitlines()[0].endswith("(unchanged; it now answers to --escape 0.1)"), stdout
    rc, stdout, _ = cli(capsys, "threshold", ckpt)
    assert rc == 0 and stdout.splitlines()[0].endswith("(unchanged)"), stdout  # shown, not rewritten


def test_threshold_escape_needs_defect_scores(capsys, good_only_ckpt):
    rc, _, err = cli(capsys, "threshold", good_only_ckpt[0], "--escape", "0.01")
    # "needs defect images (test/<type> folders)" before, to a command that takes no folder
    assert_one_line_error(rc, err, "--escape 0.01: this model was calibrated on good images only", "use --far, or refit")


def test_a_second_fit_or_export_to_the_same_out_is_refused_at_once(capsys, tiny_data, tiny_ckpt, tmp_path):
    from model.folders import hold_lock_file

    fd = hold_lock_file(tmp_path / ".m.ckpt.lock", "held")  # as a fit or export writing to m.ckpt meanwhile holds it
    try:
        rc, _, err = cli(capsys, "fit", tiny_data / "train" / "good", "--out", tmp_path / "m.ckpt", "--synth", "0", "--size", "64")
        assert_one_line_error(rc, err, "--out", "m.ckpt: another fit is writing there; wait for it to finish, or give another --out")
        rc, _, err = cli(capsys, "export", tiny_ckpt, "--format", "onnx", "--out", tmp_path / "m.ckpt")
        assert_one_line_error(rc, err, "m.ckpt: another export is writing there")
    finally:
        os.close(fd)
    assert not (tmp_path / "m.ckpt").exists()  # both refused before writing anything
    rc, _, _ = cli(capsys, "fit", tiny_data / "train" / "good", "--out", tmp_path / "m.ckpt", "--synth", "0", "--size", "64")
    assert rc == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["m.ckpt"]  # no lock file left


def test_fit_says_which_copies_it_left_out(capsys, tiny_data, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for p in sorted((tiny_data / "train" / "good").glob("*.png"))[:5]:
        shutil.copy(p, data / p.name)
    shutil.copy(data / "002.png", data / "002_again.png")
    rc, stdout, err = cli(capsys, "fit", data, "--out", tmp_path / "c.ckpt", "--size", "64", "--synth", "0")
    assert rc == 0, err
    assert "fitted 5 good images" in stdout
    assert f"note: 1 training image(s) are byte-identical copies of others and were left out, e.g. {data / '002_again.png'} (the same bytes as {data / '002.png'}, which was kept)" in stdout


def test_fit_adds_good_images_from_other_folders(capsys, tiny_data, tmp_path):
    """The loop QA closes: false alarms exported by `inspector review --export` join the training set."""
    data, extra = tmp_path / "data", tmp_path / "reviewed" / "good"
    data.mkdir()
    extra.mkdir(parents=True)
    goods = sorted((tiny_data / "train" / "good").glob("*.png"))
    for p in goods[:4]:
        shutil.copy(p, data / p.name)
    for p in goods[4:6]:
        shutil.copy(p, extra / f"f-{p.name}")
    (extra / "sub").mkdir()
    shutil.copy(goods[6], extra / "sub" / "not-read.png")  # its subfolders are not read
    rc, stdout, err = cli(capsys, "fit", data, "--out", tmp_path / "c.ckpt", "--size", "64", "--synth", "0", "--add-good", extra, "--json")
    assert rc == 0, err
    assert json.loads(stdout)["n_images"] == 6
    # which reviewed folders went in, kept with the model (the manifest named DATA alone)
    training = json.loads((tmp_path / "c.ckpt" / "manifest.json").read_text())["training"]
    assert training["n_images"] == 6 and training["added_good"] == [{"folder": str(extra.resolve()), "n_images": 2}]
    copied_test = tmp_path / "elsewhere"
    copied_test.mkdir()
    shutil.copy(next((tiny_data / "test").glob("*/*.png")), copied_test / "renamed.png")  # a defect test image, copied away
    for bad, needle in ((tmp_path / "nowhere", "no such folder"), (extra / "sub" / "not-read.png", "is a file"),
                        (tmp_path / "reviewed", f"no images ({FORMATS}) in it"), (tiny_data / "test" / "good", "is one of DATA's test images"),
                        (copied_test, "is one of DATA's test images (or a copy)")):
        rc, _, err = cli(capsys, "fit", tiny_data if "test" in str(bad) or bad == copied_test else data, "--out", tmp_path / "d.ckpt", "--size", "64", "--synth", "0",
                         "--add-good", bad)
        assert_one_line_error(rc, err, f"--add-good {bad}", needle)
    assert not (tmp_path / "d.ckpt").exists()


def test_fit_refuses_labelled_defects_that_are_also_its_good_images(capsys, tmp_path):
    from tests.synthetic import defect_image

    for k, t in enumerate(("crack", "stain")):  # images alone, no masks beside them: read as a plain folder of good parts too
        (tmp_path / "parts" / t).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / "parts" / t / f"{i}.png"), defect_image(10 * k + i)[0])  # another picture per type
    rc, _, err = cli(capsys, "fit", tmp_path / "parts", "--out", tmp_path / "m", "--labels", tmp_path / "parts", "--size", "64")
    assert_one_line_error(rc, err, "--labels", "6 of its images are among the good training images", "a folder of their own")
    assert not (tmp_path / "m").exists()


def test_fit_says_why_unknown_is_off():
    from inspector.commands.types_cli import describe_fit

    fitted = {"region": "mask", "unknown_threshold": None, "cv_accuracy": None}
    assert "`unknown` off: crack has one example, and it needs 2 of each type" in describe_fit({**fitted, "counts": {"break": 5, "crack": 1}})
    assert describe_fit({**fitted, "counts": {"break": 5, "crack": 2}}).endswith("`unknown` off")  # --unknown-rate 0
    zero_shot = describe_fit({**fitted, "counts": {"crack": 0, "scratch": 0}})  # "crack has one example" before
    assert "`unknown` off: named from words, with no examples to set its threshold" in zero_shot


def test_fit_refuses_to_overwrite(capsys, tiny_ckpt, tiny_data):
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tiny_ckpt)
    assert_one_line_error(rc, err, "--force")
    for force in ((), ("--force",)):  # into the data folder itself: written there before, even without --force
        rc, _, err = cli(capsys, "fit", tiny_data, "--out", tiny_data / "train" / "good", *force)
        assert_one_line_error(rc, err, "holds other files (000.png) and no checkpoint; give a new or empty folder")


def test_fit_replaces_what_a_fit_killed_while_writing_left(capsys, tiny_data, tmp_path):
    """SIGKILL (a power cut) while the weights were written left `model.safetensors.<pid>.tmp`, half a file: fitting
    again, with --force too, was refused ('holds other files (model.safetensors.4215.tmp)'), and it stayed for good."""
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid no process has now
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / f"model.safetensors.{dead.pid}.tmp").write_bytes(b"\0" * 4096)
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "m", "--size", "64", "--synth", "0")
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["manifest.json", "model.safetensors"]


def test_fit_says_at_once_when_the_checkpoint_would_not_fit_on_the_disk(capsys, tiny_data, tmp_path, monkeypatch):
    """It said so after minutes of fitting, when the write failed."""
    import inspector.commands.fit as fit_command
    from model.fit import FitOptions

    real = shutil.disk_usage
    fitted = []
    monkeypatch.setattr(fit_command, "shutil", SimpleNamespace(disk_usage=lambda p: real(p)._replace(free=50 * 2**20)))
    monkeypatch.setattr("model.fit.fit", lambda *a, **k: fitted.append(1))
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "new" / "c.ckpt", "--size", "64", "--synth", "0")
    assert_one_line_error(rc, err, f"--out {tmp_path / 'new' / 'c.ckpt'}: 50 MB free on its disk, and a checkpoint of")
    assert "free space or choose another folder" in err and not fitted and not (tmp_path / "new").exists()
    # the estimate stays above what the default writes (24 MB for 252 images at 256 px) and grows with what is kept
    assert 24 < fit_command.checkpoint_mb(252, FitOptions()) < 100
    assert fit_command.checkpoint_mb(252, FitOptions(references=256)) > 250  # 248 MB measured
    assert fit_command.checkpoint_mb(3000, FitOptions(input_size=512)) > fit_command.checkpoint_mb(3000, FitOptions())


# ---- bad input: one line, exit 2 -------------------------------------------------------------------


@pytest.fixture
def bad(tmp_path, tiny_ckpt, tiny_data):
    """Named bad inputs, created on demand."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "fake.png").write_bytes(b"\x89PNG but not really")
    (tmp_path / "undecodable").mkdir()
    (tmp_path / "undecodable" / "fake.png").write_bytes(b"\x89PNG but not really")
    corrupt = shutil.copytree(tiny_ckpt, tmp_path / "corrupt.ckpt")
    (corrupt / "manifest.json").write_text("{ truncated")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "model.onnx").write_bytes(b"not checked: refused by kind")
    (tmp_path / "three").mkdir()
    for p in sorted((tiny_data / "train" / "good").glob("*.png"))[:3]:
        shutil.copy(p, tmp_path / "three" / p.name)
    shutil.copytree(tiny_data, tmp_path / "site" / "line1")
    return {"tmp": tmp_path, "ckpt": tiny_ckpt, "data": tiny_data, "image": tiny_data / "test" / "good" / "000.png"}


CASES = {
    "fit: missing data dir": (["fit", "{tmp}/nowhere", "--out", "{tmp}/o.ckpt"], ["nowhere", "no such folder"]),
    "fit: empty data dir": (["fit", "{tmp}/empty", "--out", "{tmp}/o.ckpt"], ["empty", "no good images"]),
    "fit: the folder above a layout": (["fit", "{tmp}/site", "--out", "{tmp}/o.ckpt"], ["line1 is an MVTec AD layout", "give that folder"]),
    "fit: a layout's test folder": (["fit", "{data}/test", "--out", "{tmp}/o.ckpt"], ["good/ beside blob/", "test/good"]),
    "fit: unknown backbone": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--backbone", "resnet50"], ["unknown backbone 'resnet50'"]),
    "fit: coreset above 1": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--coreset", "1.5"], ["--coreset 1.5"]),
    "fit: coreset 0": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--coreset", "0"], ["--coreset 0"]),
    "fit: one reference": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--references", "1"], ["--references 1", "at least 2"]),
    "fit: references with synth": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--references", "8", "--synth", "10"],
                                   ["--references with --synth"]),
    "fit: ref-k without references": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--ref-k", "5"],
                                      ["--ref-k 5", "only with --references"]),
    "fit: negative ref-radius": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--references", "8", "--ref-radius", "-1"],
                                 ["--ref-radius -1"]),
    "fit: no neighbours": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--neighbours", "0"], ["--neighbours 0", "at least 1"]),
    "fit: neighbours with references": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--references", "8", "--neighbours", "3"],
                                        ["--neighbours 3", "which --references replaces"]),
    "fit: negative peers": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--peers", "-2"], ["--peers -2", "give 0 (off)"]),
    "fit: bad size": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--size", "50"], ["--size 50"]),
    "fit: size too large": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--size", "100000"], ["--size 100000", "from 64 to 1024"]),
    "fit: bad option value": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--layers", "a,b"], ["--layers"]),
    "fit: too few images": (["fit", "{tmp}/three", "--out", "{tmp}/o.ckpt", "--size", "64"],
                            ["3 distinct good image(s); fitting needs at least 5", "add good images"]),
    "fit: out under a file": (["fit", "{data}", "--out", "{tmp}/a_file/o.ckpt"], ["--out", "a_file/o.ckpt", "cannot be written"]),
    "inspect: non-image file": (["inspect", "{ckpt}", "{tmp}/notes.txt"], ["notes.txt", "cannot be decoded"]),
    "inspect: corrupt image": (["inspect", "{ckpt}", "{tmp}/fake.png"], ["fake.png", "cannot be decoded"]),
    "inspect: missing image": (["inspect", "{ckpt}", "{tmp}/nope.png"], ["nope.png"]),
    "inspect: empty folder": (["inspect", "{ckpt}", "{tmp}/empty"], ["no images"]),
    "inspect: corrupt checkpoint": (["inspect", "{tmp}/corrupt.ckpt", "{image}"], ["manifest.json", "not valid JSON"]),
    "inspect: missing checkpoint": (["inspect", "{tmp}/none.ckpt", "{image}"], ["none.ckpt"]),
    "inspect: image folder as checkpoint": (["inspect", "{tmp}/empty", "{image}"], ["no manifest.json"]),
    "inspect: unknown language": (["inspect", "{ckpt}", "{image}", "--lang", "fr"], ["--lang fr"]),
    "inspect: threshold not a number": (["inspect", "{ckpt}", "{image}", "--threshold", "nan"], ["--threshold nan"]),
    "inspect: overlays path is a file": (["inspect", "{ckpt}", "{data}/test", "--overlays", "{tmp}/a_file"], ["--overlays"]),
    "inspect: overlays under a file": (["inspect", "{ckpt}", "{image}", "--overlays", "{tmp}/a_file/o"], ["--overlays", "cannot be written"]),
    "export: out under a file": (["export", "{ckpt}", "--format", "onnx", "--out", "{tmp}/a_file/x"], ["--out", "cannot be written"]),
    "synth: out is a file": (["synth", "{data}/train/good", "--out", "{tmp}/a_file"], ["--out", "is a file"]),
    "synth: out under a file": (["synth", "{data}/train/good", "--out", "{tmp}/a_file/o"], ["--out", "cannot be written"]),
    "eval: missing data": (["eval", "{ckpt}", "{tmp}/nowhere"], ["nowhere"]),
    "eval: no labelled test images": (["eval", "{ckpt}", "{data}/train/good"], ["no test/<type> folders"]),
    "threshold: not a number": (["threshold", "{ckpt}", "--set", "nan"], ["--set nan"]),
    # options their mode does not use were accepted and ignored
    "eval: --size without --ablation": (["eval", "{ckpt}", "{data}", "--size", "128"], ["--size 128", "only with --ablation or --shots"]),
    "eval: --synth without --ablation": (["eval", "{ckpt}", "{data}", "--synth", "10"], ["--synth 10", "only with --ablation"]),
    "eval: --seeds without --shots": (["eval", "{ckpt}", "{data}", "--seeds", "3"], ["--seeds 3", "only with --shots"]),
    "eval: --holdout without --shots": (["eval", "{ckpt}", "{data}", "--holdout"], ["--holdout:", "only with --shots"]),
    "synth: --types naming nothing": (["synth", "{data}/train/good", "--out", "{tmp}/s", "--n", "2", "--types", " , "], ["--types ' , '", "no names"]),
    "fit: --synth-types naming nothing": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--synth-types", " , "], ["--synth-types ' , '", "no names"]),
    "eval: --ablation with --shots": (["eval", "{data}", "--ablation", "--shots", "2"], ["--ablation with --shots 2", "drop one"]),
    "eval: --lang without --report": (["eval", "{ckpt}", "{data}", "--lang", "zh"], ["--lang", "only with --report"]),
    "eval: --report with --shots": (["eval", "{ckpt}", "{data}", "--shots", "2", "--report", "{tmp}/r"],
                                    ["--report", "only with a model's evaluation"]),
    # checked before any image is scored
    "eval: report in an unknown language": (["eval", "{ckpt}", "{data}", "--report", "{tmp}/r", "--lang", "fr"], ["language 'fr'"]),
    "eval: report in an unknown format": (["eval", "{ckpt}", "{data}", "--report", "{tmp}/r", "--format", "docx"], ["report format docx"]),
    "eval: report folder under a file": (["eval", "{ckpt}", "{data}", "--report", "{tmp}/a_file/r"], ["a_file/r", "cannot be written", "--report"]),
    "eval: report folder is a file": (["eval", "{ckpt}", "{data}", "--report", "{tmp}/a_file"], ["a_file", "is a file", "--report"]),
    "fit: a region written with a minus": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--roi", "-1,40,160,160"],
                                           ["--roi", "'-1,40,160,160'", "X,Y,W,H"]),  # argparse took it for an option
    "eval: report folder empty": (["eval", "{ckpt}", "{data}", "--report", ""], ["--report ''", "give the folder"]),
    "eval: report format empty": (["eval", "{ckpt}", "{data}", "--report", "{tmp}/r", "--format", ""], ["report format (none)"]),
    "eval: report logo missing": (["eval", "{ckpt}", "{data}", "--report", "{tmp}/r", "--logo", "{tmp}/logo.png"], ["logo.png", "no such file; give a PNG, JPEG or SVG file"]),
    "eval: --size with a checkpoint's --shots": (["eval", "{ckpt}", "{data}", "--shots", "2", "--size", "224"],
                                                 ["--size 224", "applies only with a backbone name"]),  # ignored before
    "eval: --shots on an export": (["eval", "{tmp}/model.onnx", "{data}", "--shots", "2"], ["an export's type head cannot be refitted"]),
    "export: --calib without int8": (["export", "{ckpt}", "--format", "onnx", "--out", "{tmp}/x", "--calib", "{data}"],
                                     ["--calib", "only to --format onnx-int8 or tensorrt-int8"]),
    "export: --int8-tolerance without onnx-int8": (["export", "{ckpt}", "--format", "onnx", "--out", "{tmp}/x", "--int8-tolerance", "0.5"],
                                                   ["--int8-tolerance 0.5", "only to --format onnx-int8"]),
    "fit: ref-k beyond the references": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--references", "4", "--ref-k", "10"],
                                         ["--ref-k 10", "at most --references - 1 (3)"]),
    "fit: no-peer-position without peers": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--peers", "0", "--no-peer-position"],
                                            ["--no-peer-position", "--peers 0"]),
    "threshold: both set and policy": (["threshold", "{ckpt}", "--set", "1", "--far", "0.1"], ["not both"]),
    "unknown command": (["frobnicate"], ["invalid choice"]),
    # a negative seed was a traceback (in fit after minutes of fitting; demo left its --out behind)
    "fit: negative seed": (["fit", "{data}", "--out", "{tmp}/o.ckpt", "--seed", "-1"], ["--seed", "'-1': give a whole number from 0"]),
    "synth: negative seed": (["synth", "{data}", "--out", "{tmp}/s", "--seed", "-1"], ["--seed", "'-1'"]),
    "demo: negative seed": (["demo", "--quick", "--out", "{tmp}/d", "--seed", "-1"], ["--seed", "'-1'"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2(capsys, bad, case):
    argv, needles = CASES[case]
    rc, stdout, err = cli(capsys, *(a.format(**bad) for a in argv))
    assert_one_line_error(rc, err, *needles)


@pytest.mark.parametrize("extra, needles", [
    (["--verify", "{tmp}/empty"], ["--verify", "no images found"]),
    (["--verify", "{tmp}/undecodable"], ["--verify", "fake.png", "remove or replace that image"]),  # after the export before
    (["--verify", "{data}", "--device", "gpu"], ["--device 'gpu'", "cpu or cuda[:N] or tensorrt[:N]"]),
    (["--int8-tolerance", "0"], ["--int8-tolerance 0.0", "positive"]),
    (["--int8-tolerance", "nan"], ["--int8-tolerance nan", "positive"]),
    (["--int8-tolerance", "inf"], ["--int8-tolerance inf", "positive"]),  # skipped the check before
])
def test_export_checks_its_options_before_exporting(capsys, bad, extra, needles):
    rc, _, err = cli(capsys, "export", bad["ckpt"], "--format", "onnx", "--out", bad["tmp"] / "ex", *(a.format(**bad) for a in extra))
    assert_one_line_error(rc, err, *needles)
    assert not (bad["tmp"] / "ex").exists()


def test_bad_input_through_a_real_process(bad):
    """The console script and `python -m inspector`: exit code 2, one line, no traceback."""
    proc = run_process("fit", bad["tmp"] / "nowhere", "--out", bad["tmp"] / "o.ckpt", cwd=bad["tmp"])
    assert_one_line_error(proc.returncode, proc.stderr, "nowhere")
    proc = subprocess.run([sys.executable, "-m", "inspector", "inspect", str(bad["tmp"] / "corrupt.ckpt"), str(bad["image"])],
                          capture_output=True, text=True, cwd=bad["tmp"], timeout=300)
    assert_one_line_error(proc.returncode, proc.stderr, "not valid JSON")
    assert proc.stdout == ""



def test_a_closed_stderr_is_opened_on_dev_null(tmp_path):
    """`inspector ... 2>&-`: Python left sys.stderr None, so fit and eval ended in a traceback (exit 70) at their first
    progress bar, an error went to stdout (where --json output goes), and the first file opened took descriptor 2."""
    proc = subprocess.run([sys.executable, "-m", "inspector", "threshold", str(tmp_path / "none.ckpt")], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300, preexec_fn=lambda: os.close(2))
    assert proc.returncode == 2 and proc.stdout == ""


@pytest.mark.parametrize("value", ["abc", "0", ""])
def test_an_omp_num_threads_openmp_cannot_read_is_refused_in_one_line(capsys, tmp_path, monkeypatch, value):
    """OpenMP ignored it, with a raw 'libgomp: Invalid value for environment variable OMP_NUM_THREADS' in every command."""
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    rc, _, err = cli(capsys, "threshold", tmp_path / "none.ckpt")
    assert_one_line_error(rc, err, f"OMP_NUM_THREADS={value!r}", "unset it")


def test_a_current_folder_deleted_is_said_in_one_line(capsys, tmp_path, monkeypatch):
    """torch's oneMKL ended fit, inspect, eval and export there with 'Intel oneMKL FATAL ERROR: Cannot load
    libtorch_cpu.so' (exit 2), which named neither the folder nor the fix."""
    (tmp_path / "gone").mkdir()
    monkeypatch.chdir(tmp_path / "gone")
    (tmp_path / "gone").rmdir()
    rc, _, err = cli(capsys, "threshold", tmp_path / "none.ckpt")
    assert_one_line_error(rc, err, "no longer exists", "cd to a folder that exists")


def test_onnxruntime_is_quiet_where_its_cache_folder_cannot_be_made(tmp_path):
    """A service user without a writable home: onnxruntime printed '[W:onnxruntime:Default, telemetry_1ds.cc:613
    operator()] Failed to persist telemetry device ID' (in colour) on stderr in export, bench and serve of an export."""
    (tmp_path / "file").write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "ORT_DISABLE_TELEMETRY")}
    code = "import sys; from inspector.cli import main; main(sys.argv[1:]); import onnxruntime"
    proc = subprocess.run([sys.executable, "-c", code, "threshold", str(tmp_path / "none.ckpt")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300, env={**env, "HOME": str(tmp_path / "file" / "home")})
    assert_one_line_error(2, proc.stderr, "none.ckpt")

def test_two_threshold_changes_at_once_are_both_kept(tiny_ckpt, tmp_path, monkeypatch):
    import threading
    import time

    import model.checkpoint
    from inspector.cli import main

    ckpt = shutil.copytree(tiny_ckpt, tmp_path / "ck")
    real = model.checkpoint.read_manifest

    def slow_read(path):  # each change reads, then thinks: the other's write lands in between without a lock
        manifest = real(path)
        time.sleep(0.5)
        return manifest

    monkeypatch.setattr(model.checkpoint, "read_manifest", slow_read)
    runs = [threading.Thread(target=main, args=(["threshold", str(ckpt), *change, "--json"],)) for change in (["--set", "7.5"], ["--pixel", "3.5"])]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    assert json.loads((ckpt / "manifest.json").read_text())["thresholds"] == {"image": 7.5, "pixel": 3.5}  # one was lost before


def test_fit_help_states_the_defaults_fit_uses(capsys):
    from inspector.cli import main
    from model.fit import FitOptions

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (("--coreset", FitOptions.coreset_ratio), ("--global-weight", FitOptions.global_weight)):
        entry = text.rsplit(f"{flag} ", 1)[1].split(" --")[0]  # its help, after the usage line
        assert f"(default {default})" in entry, (flag, default, entry)


def test_progress_in_a_log_is_a_line_now_and_then(capsys):
    from inspector.commands.common import LogLines

    now = [0.0]
    bar = LogLines("features", 10, every=30, clock=lambda: now[0])
    for t in (10, 20, 31, 40, 62):
        now[0] = t
        bar.update()
    now[0] = 70
    bar.close()
    assert capsys.readouterr().err.splitlines() == ["features: 3/10 (31 s)", "features: 5/10 (62 s)", "features: done, 5/10 in 70 s"]
    # steps shorter than that print nothing, unless together they have been silent for that long
    last = [now[0]]
    for desc, t in (("coreset", 90), ("calibration", 101)):
        step = LogLines(desc, 5, every=30, clock=lambda: now[0], last=last)
        now[0] = t
        step.update(5)
        step.close()
    assert capsys.readouterr().err.splitlines() == ["calibration: 5/5 (11 s)"]
    # a short step whose line left its count short says its end: '15/22' last in a log reads as a stall
    last[0] = now[0] - 29
    step = LogLines("features", 22, every=30, clock=lambda: now[0], last=last)
    now[0] += 1
    step.update(15)
    now[0] += 5
    step.update(7)
    step.close()
    assert capsys.readouterr().err.splitlines() == ["features: 15/22 (1 s)", "features: done, 22/22 in 6 s"]


def test_a_command_logging_to_a_file_says_its_steps(capsys, tiny_data, tmp_path, monkeypatch):
    """stderr here is not a terminal (as in a job's log): no bars, but lines (every 30 s; every step here)."""
    from inspector.commands import common

    monkeypatch.setattr(common, "LOG_EVERY_S", 0.0)
    code, out, err = cli(capsys, "synth", tiny_data / "train" / "good", "--out", tmp_path / "s", "--n", "3", "--types", "scratch,crack,pit")
    assert code == 0, err
    steps = [re.sub(r"\d+ s\b", "T s", line) for line in err.splitlines()]
    assert steps == ["synthesising: 1/3 (T s)", "synthesising: 2/3 (T s)", "synthesising: 3/3 (T s)", "synthesising: done, 3/3 in T s"]
    assert "\r" not in err and "wrote 3 defect images" in out


def test_inspect_counts_the_files_decoding_in_its_decode_time(capsys, tiny_ckpt, tiny_data, monkeypatch):
    """The CLI decoded before the timed call: its `decode` read 0.006 ms where the API's read 11 ms for the same JPEG."""
    import time

    import inspector.api

    real = inspector.api.read_image_bytes
    monkeypatch.setattr(inspector.api, "read_image_bytes", lambda *a, **k: time.sleep(0.05) or real(*a, **k))  # a slow decoder, 50 ms
    rc, out, _ = cli(capsys, "inspect", tiny_ckpt, tiny_data / "test" / "good" / "000.png", "--json")
    assert rc == 0 and json.loads(out)["timings_ms"]["decode"] >= 50


def test_the_model_and_its_images_the_other_way_round_are_named(capsys, tiny_ckpt, tiny_data):
    """"folder CKPT: no images", "data CKPT: no test/<type> folders", "--exports DATA: no .onnx files" (never given) and
    "its manifest x.png.json is missing" named what went wrong next, not the order or the image."""
    image = sorted((tiny_data / "test" / "good").iterdir())[0]
    for command, given, fixed in (("inspect", (image, image, tiny_ckpt), (tiny_ckpt, image, image)),
                                  ("eval", (tiny_data, tiny_ckpt), (tiny_ckpt, tiny_data)),
                                  ("bench", (tiny_data, tiny_ckpt), (tiny_ckpt, tiny_data))):
        rc, _, err = cli(capsys, command, *given)
        shown = "bench model" if command == "bench" else command
        assert_one_line_error(rc, err, f"{tiny_ckpt} is the model", f"`inspector {shown} {' '.join(map(str, fixed))}`")
    rc, _, err = cli(capsys, "threshold", image)
    assert_one_line_error(rc, err, f"model {image}: is an image, not a model")


def test_an_image_under_two_labels_is_named_and_counted_once_as_calibrated_on(capsys, tiny_ckpt, tiny_data, tmp_path):
    """A good test image copied into a defect folder counted as both, unsaid, and as calibrated on twice."""
    data = shutil.copytree(tiny_data, tmp_path / "data")
    good = sorted((data / "test" / "good").iterdir())[0]
    shutil.copy(good, data / "test" / "blob" / "copied.png")
    rc, stdout, err = cli(capsys, "eval", tiny_ckpt, data, "--json", "--no-overlap")
    assert rc == 0, err
    report = json.loads(stdout)
    copied = str(data / "test" / "blob" / "copied.png")
    assert [n for n in report["notes"] if "the same image" in n] == [
        f"the same image is labelled blob and good: {copied}, {good}; keep it under its true label only"]
    assert (report["n_good"] + report["n_defect"], report["at_threshold"]["test_images_calibrated_on"]) == (9, 8)
    rc, stdout, _ = cli(capsys, "eval", tiny_ckpt, data, "--no-overlap")
    assert rc == 0 and "(calibrated on 8 of these 9 images)" in stdout


def test_a_failed_part_with_no_pixel_over_the_pixel_threshold_shows_its_peak_as_such(capsys, tiny_ckpt, tiny_data, tmp_path):
    ckpt = shutil.copytree(tiny_ckpt, tmp_path / "no-pixel.ckpt")
    assert cli(capsys, "threshold", ckpt, "--pixel", "1e30")[0] == 0
    defect = sorted((tiny_data / "test" / "blob").glob("*.png"))[0]
    rc, stdout, err = cli(capsys, "inspect", ckpt, defect)
    assert rc == 0 and "FAIL" in stdout and "(where the map peaks: no pixel reached the pixel threshold)" in stdout, err
    rc, stdout, _ = cli(capsys, "inspect", ckpt, defect, "--json")
    assert [d["located_by"] for d in json.loads(stdout)["defects"]] == ["map_peak"]
    rc, stdout, _ = cli(capsys, "inspect", tiny_ckpt, defect, "--json")
    assert {d["located_by"] for d in json.loads(stdout)["defects"]} == {"pixel_threshold"}
