"""`inspector eval` as QA uses it before sign-off: its ablation, its data folder and its --new-parts refusals."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from model.data import load_dataset
from model.errors import InspectorError
from model.fit import FitOptions
from tests.cli import assert_one_line_error, cli
from tests.synthetic import write_mvtec


@pytest.fixture
def small_data(tmp_path):
    return write_mvtec(tmp_path / "data", n_train=8, n_good_test=3, n_defect=3, size=64)


def test_ablation_names_every_bad_test_image_and_mask_before_it_fits(small_data, monkeypatch, capsys):
    import model.ablation as ablation

    mask = small_data / "ground_truth" / "blob" / "001_mask.png"
    cv2.imwrite(str(mask), np.zeros((32, 32), np.uint8))  # half its image's size
    (small_data / "test" / "good" / "002.png").write_bytes(b"not an image")

    def no_fit(*a, **k):
        raise AssertionError("fitted before the test images were checked")

    monkeypatch.setattr(ablation, "fit_good_only", no_fit)
    with pytest.raises(InspectorError) as e:
        ablation.run_ablation(load_dataset(small_data), FitOptions(input_size=64), synth=4)
    message = str(e.value)
    assert "2 test image(s) or mask(s) cannot be used" in message and "001_mask.png: 32x32 px" in message
    assert "002.png: cannot be decoded" in message and "\n" not in message
    rc, _, err = cli(capsys, "eval", small_data, "--ablation", "--synth", "4", "--size", "64")
    assert_one_line_error(rc, err, "001_mask.png", "002.png")


def test_ablation_table_keeps_every_row_in_its_columns(small_data, monkeypatch, capsys):
    import model.ablation as ablation

    names = list(ablation.variants(300))
    rows = [{"variant": n, **{m: 0.5 for m in ablation.METRICS}, "fit_seconds": 1.0, "alpha": None} for n in names]
    monkeypatch.setattr(ablation, "run_ablation", lambda *a, **k: rows)
    rc, out, err = cli(capsys, "eval", small_data, "--ablation")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 1 + len(names)
    assert max(len(n) for n in names) > 36  # the names the fixed width cut into
    assert len({len(line) for line in lines}) == 1, out  # every row as wide as the header: numbers under their names
    end = lines[0].index("image_auroc") + len("image_auroc")
    assert all(line[:end].endswith("0.5000") for line in lines[1:]), out


def test_eval_says_which_ground_truth_files_are_no_images_mask(capsys, tiny_ckpt, tiny_data, tmp_path):
    import json
    import shutil

    data = shutil.copytree(tiny_data, tmp_path / "data")
    for mask in sorted((data / "ground_truth" / "blob").iterdir())[:2]:  # 000_mask.png -> 000.png
        mask.rename(mask.with_name(mask.name.replace("_mask", "")))
    rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--json", "--no-overlap")
    report = json.loads(out)
    assert rc == 0 and report["defects_without_masks"] == 2, err
    note = next(n for n in report["notes"] if "no image's mask" in n)
    assert "ground_truth/blob holds 2 file(s)" in note and "e.g. 000.png" in note and "must be named 000_mask.png" in note
    rc, out, _ = cli(capsys, "eval", tiny_ckpt, tiny_data, "--json", "--no-overlap")
    assert not any("no image's mask" in n for n in json.loads(out).get("notes", []))  # every mask matched: nothing said


def test_eval_given_the_test_folder_names_the_layouts_root(capsys, tiny_ckpt, tiny_data):
    for inside in (tiny_data / "test", tiny_data / "test" / "blob"):
        rc, _, err = cli(capsys, "eval", tiny_ckpt, inside)
        assert_one_line_error(rc, err, f"{tiny_data / 'test'} is the test/ folder of an MVTec AD layout", f"above it, {tiny_data}")
    rc, _, err = cli(capsys, "eval", tiny_ckpt, tiny_data / "train" / "good")
    assert_one_line_error(rc, err, "no test/<type> folders")
    assert "MVTec AD layout" not in err  # a folder of good images is not inside test/


def test_eval_new_parts_refuses_too_few_training_images_before_scoring(capsys, tiny_ckpt, monkeypatch, tmp_path):
    import model.evaluate

    data = write_mvtec(tmp_path / "few", n_train=6, n_good_test=2, n_defect=2, size=64)

    def no_scoring(*a, **k):
        raise AssertionError("scored the test images of a request that cannot be met")

    monkeypatch.setattr(model.evaluate, "score_samples", no_scoring)
    rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--json", "--new-parts")  # 5 folds: some refit keeps 4 of 6
    assert_one_line_error(rc, err, "--new-parts 5 over 6 training image(s)", "at most 4", "needs at least 5")
    assert out == ""  # no report with a `skipped` beside exit 0


def test_a_defect_whose_mask_marks_nothing_is_left_out_of_the_pixel_metrics_and_said(capsys, tiny_ckpt, tiny_data, tmp_path):
    """A blank mask (or a defect too thin for the input size) read every pixel of a real defect as normal: the model
    that found it was charged false alarms there. It now counts as a defect without a mask, in a note of its own."""
    import json
    import shutil

    blank = shutil.copytree(tiny_data, tmp_path / "blank")
    mask = blank / "ground_truth" / "blob" / "001_mask.png"
    cv2.imwrite(str(mask), np.zeros(cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE).shape, np.uint8))
    dot = np.zeros((96, 96), np.uint8)
    dot[2, 2] = 255  # one pixel, which the nearest-neighbour resize to 64 px skips (it samples rows and columns 0, 1, 3, ...)
    cv2.imwrite(str(blank / "ground_truth" / "blob" / "002_mask.png"), dot)
    gone = shutil.copytree(tiny_data, tmp_path / "gone")
    (gone / "ground_truth" / "blob" / "001_mask.png").unlink()
    (gone / "ground_truth" / "blob" / "002_mask.png").unlink()
    reports = []
    for data in (blank, gone, tiny_data):
        rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--json", "--no-overlap")
        assert rc == 0, err
        reports.append(json.loads(out))
    with_blank, without, whole = reports
    assert (with_blank["defects_with_empty_masks"], with_blank["defects_without_masks"]) == (2, 0)
    assert "defects_with_empty_masks" not in without and "defects_with_empty_masks" not in whole
    for key in ("pixel_auroc", "pixel_ap", "aupro"):
        assert with_blank[key] == without[key], key  # as if it had no mask
    assert with_blank["aupro"] != whole["aupro"]  # the image did move the numbers (the test can fail)
    note = next(n for n in with_blank["notes"] if "marks no pixel" in n)
    assert note.startswith("2 defect image(s)") and "1 drawn blank (first: " in note and "001_mask.png): draw the defect" in note
    assert "1 whose defect pixels lie outside the model's region or are too thin" in note and "64x64 px input" in note
    assert "002_mask.png): a larger --size" in note
    rc, out, _ = cli(capsys, "eval", tiny_ckpt, blank, "--no-overlap")
    assert "pixel_auroc and aupro are on" not in out and "marks no pixel" in out  # no "on the 3 with a mask" beside it


def test_eval_names_test_images_in_folders_below_a_type_folder(capsys, tiny_ckpt, tiny_data, tmp_path):
    """test/blob/lot1/*.png were silently not evaluated: the report's counts and metrics were of the rest alone."""
    import json
    import shutil

    data = shutil.copytree(tiny_data, tmp_path / "data")
    (data / "test" / "blob" / "lot1").mkdir()
    for image in sorted((data / "test" / "blob").glob("*.png"))[:2]:
        image.rename(data / "test" / "blob" / "lot1" / image.name)
    rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--json", "--no-overlap")
    report = json.loads(out)
    assert rc == 0 and report["n_defect"] == 2, err
    note = next(n for n in report["notes"] if "folders below it" in n)
    assert f"{data / 'test' / 'blob'} has 2 image(s)" in note and "lot1/000.png" in note
    rc, out, _ = cli(capsys, "eval", tiny_ckpt, tiny_data, "--json", "--no-overlap")
    assert not any("folders below it" in n for n in json.loads(out).get("notes", []))


def test_eval_json_with_a_name_that_is_not_utf8_is_valid_utf8_json(capsys, tiny_ckpt, tiny_data, tmp_path):
    """A file name in another charset (GBK from a Windows zip) reaches Python as lone surrogates: printed as they were,
    they crashed a UTF-8 stdout after the whole evaluation, or (C locale) wrote bytes no JSON reader decodes."""
    import json
    import os
    import shutil

    data = shutil.copytree(tiny_data, tmp_path / "data")
    lot = data / "test" / "blob" / "lot1"
    lot.mkdir()
    name = os.fsdecode(b"caf\xe9.png")  # latin-1 bytes: not UTF-8
    try:
        (data / "test" / "blob" / "000.png").rename(lot / name)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system takes no file name that is not UTF-8")
    rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--json", "--no-overlap")
    assert rc == 0, err
    report = json.loads(out.encode("utf-8"))  # strict: no lone surrogate left in the text
    assert any(str(lot / name) in n for n in report["notes"])  # the very name comes back


def test_new_parts_with_too_few_images_per_refit_asks_for_more_folds_not_fewer(capsys, tiny_ckpt, tmp_path):
    """Fewer folds are bigger folds, so each refit keeps fewer images: "give fewer folds" (said before) made it worse,
    and at --new-parts 2 named nothing to give at all."""
    from model.data import Dataset
    from model.new_parts import new_parts_report

    data = write_mvtec(tmp_path / "few", n_train=6, n_good_test=2, n_defect=2, size=64)
    rc, _, err = cli(capsys, "eval", tiny_ckpt, data, "--new-parts", "--no-overlap")
    assert_one_line_error(rc, err, "give --new-parts 6 (smaller folds, each refit keeps more), or at least 7 images")
    assert "fewer folds" not in err
    rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--json", "--new-parts", "6", "--no-overlap")
    assert rc == 0 and "skipped" not in json.loads(out)["new_parts"], err  # the advice given works
    rc, _, err = cli(capsys, "eval", tiny_ckpt, data, "--new-parts", "2", "--no-overlap")
    assert_one_line_error(rc, err, "--new-parts 2 over 6 training image(s)", "give --new-parts 6", "at least 10 images in train/good")
    dataset = load_dataset(data)
    eight = Dataset(dataset.root, dataset.train + dataset.train[:2], dataset.test)  # 2 copies: 6 distinct images
    with pytest.raises(InspectorError, match=r"keeps 3 good image\(s\), and fitting needs at least 5; give --new-parts 6 \(smaller"):
        new_parts_report(eight, FitOptions(input_size=64), folds=2, parts=np.r_[np.arange(6), 0, 1])


def test_eval_says_what_ms_per_image_times(capsys, tiny_ckpt, tiny_data):
    rc, out, err = cli(capsys, "eval", tiny_ckpt, tiny_data, "--no-overlap")
    line = next(line for line in out.splitlines() if "ms_per_image" in line)
    assert rc == 0 and "(median, the model alone, one image at a time: not decoding" in line, err


def test_eval_names_every_unreadable_test_image_at_once(capsys, tiny_ckpt, tiny_data, tmp_path):
    import shutil

    data = shutil.copytree(tiny_data, tmp_path / "data")
    (data / "test" / "good" / "001.png").write_bytes(b"")
    (data / "test" / "blob" / "002.png").write_bytes(b"not an image")
    rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--json")
    assert_one_line_error(rc, err, "2 of 8 test images cannot be used", "test/blob/002.png (cannot be decoded",
                          "test/good/001.png (the file is empty)")
    assert out == ""


@pytest.mark.parametrize("json_out", [True, False])
def test_inspect_with_a_name_that_is_not_utf8_prints_it_escaped(capsys, tiny_ckpt, tiny_data, tmp_path, json_out):
    """Every command's output, not only eval's JSON: `inspect` of a file named in another charset crashed with a
    traceback after inspecting it (UnicodeEncodeError on a strict UTF-8 stdout)."""
    import json
    import os
    import shutil

    name = os.fsdecode(b"pi\xe8ce.png")  # latin-1 bytes: not UTF-8
    try:
        part = shutil.copy(tiny_data / "test" / "good" / "000.png", tmp_path / name)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system takes no file name that is not UTF-8")
    rc, out, err = cli(capsys, "inspect", tiny_ckpt, tmp_path, *(["--json"] if json_out else []))
    assert rc == 0, err
    if json_out:
        assert json.loads(out.encode("utf-8"))["results"][0]["source"] == str(part)  # strict: no lone surrogate left
    else:
        assert "pi\\udce8ce.png" in out or "pi\\xe8ce.png" in out, out


def test_the_validation_report_carries_every_note_eval_prints(capsys, tiny_ckpt, tiny_data, tmp_path):
    """QA signs the report, not the JSON: eval's notes (a test image left out in a subfolder, a blank mask) reached
    only stdout, and the report's data-set notes held only broken links."""
    import html as html_lib
    import shutil
    from pathlib import Path

    data = shutil.copytree(tiny_data, tmp_path / "data")
    (data / "test" / "good" / "lot1").mkdir()
    shutil.copy(data / "test" / "good" / "000.png", data / "test" / "good" / "lot1" / "extra.png")
    mask = next((data / "ground_truth" / "blob").glob("*_mask.png"))
    cv2.imwrite(str(mask), np.zeros_like(cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)))
    rc, out, err = cli(capsys, "eval", tiny_ckpt, data, "--json", "--no-overlap", "--report", tmp_path / "qa", "--format", "html")
    assert rc == 0, err
    report = json.loads(out)
    page = html_lib.unescape(Path(report["validation_report"]["html"]).read_text(encoding="utf-8"))
    assert any("lot1" in n for n in report["notes"]) and any("blank" in n for n in report["notes"])
    from reports.validation import TRANSLATED_NOTES

    assert all(n in page for n in report["notes"] if not n.startswith(TRANSLATED_NOTES))
    # those the report words itself, once, in its language (eval's English beside them said it twice)
    assert any(n.startswith(TRANSLATED_NOTES) for n in report["notes"]) and "fpr_at_recall_99" not in page
    assert page.count("cannot resolve 99% of defects caught") == 1


def test_fit_says_what_eval_says_of_nested_test_images_and_misnamed_masks(small_data):
    """fit calibrates its threshold on the same test images: a lot's subfolder of defects, or masks named 000.png,
    were left out of that calibration unsaid (eval alone named them)."""
    (small_data / "test" / "blob" / "lot1").mkdir()
    (small_data / "test" / "blob" / "000.png").rename(small_data / "test" / "blob" / "lot1" / "000.png")
    (small_data / "ground_truth" / "blob" / "001_mask.png").rename(small_data / "ground_truth" / "blob" / "001.png")
    notes = load_dataset(small_data).notes  # fit prints these before it fits
    assert any("lot1/000.png" in n and "left out" in n for n in notes), notes
    assert any("must be named 001_mask.png" in n for n in notes), notes
