"""Defect generation (`inspector synth`) and defect types (fit --labels, eval --shots): an interrupted run, type folders that read as one, links that lead nowhere."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import unicodedata
from pathlib import Path

import cv2
import pytest

from tests.cli import assert_one_line_error, cli
from tests.synthetic import good_image

ROOT = Path(__file__).resolve().parents[2]


def _good(tmp_path: Path, n: int = 4, size: int = 48) -> Path:
    good = tmp_path / "good"
    good.mkdir()
    for i in range(n):
        cv2.imwrite(str(good / f"{i:02d}.png"), good_image(i, size))
    return good


def _synth_killed(good, out, signal_name: str, after: int) -> subprocess.CompletedProcess:
    """`synth` of 40 defects in a process of its own that sends itself `signal_name` after `after` of them."""
    script = textwrap.dedent(f"""
        import os, signal
        from model.synth.writer import write_synthetic

        class Bar:
            done = 0
            def update(self, k):
                self.done += k
                if self.done == {after}:
                    os.kill(os.getpid(), signal.{signal_name})
            def close(self):
                pass

        write_synthetic({str(good)!r}, {str(out)!r}, 40, progress=lambda *a, **k: Bar())
        print("finished")
    """)
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_sigterm_mid_run_leaves_no_half_written_set(tmp_path):
    """SIGTERM (`timeout`, a CI job's stop) killed synth at once: the images and masks made so far stayed, with no
    labels.json, and a later `synth --force` there refused them as files no synth run wrote. Now it ends as Ctrl-C does
    (what it wrote is removed), and then by the signal, as before."""
    good, out = _good(tmp_path), tmp_path / "out"
    proc = _synth_killed(good, out, "SIGTERM", after=3)
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert "finished" not in proc.stdout
    assert not [p for p in out.rglob("*") if p.is_file()]


def test_synth_force_replaces_what_a_killed_run_left(tmp_path, capsys):
    """SIGKILL (a power cut) left the images and masks made so far, with no labels.json, and `synth --force` there
    refused them: 'test/scratch/00000.png is already there and no earlier `inspector synth` run there wrote it'."""
    good, out = _good(tmp_path), tmp_path / "out"
    proc = _synth_killed(good, out, "SIGKILL", after=12)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert len([p for p in out.rglob("*.png")]) == 24
    rc, _, err = cli(capsys, "synth", good, "--out", out, "--n", 3, "--force")
    assert rc == 0, err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "contact_sheet.png", "ground_truth/crack/00001_mask.png", "ground_truth/pit/00002_mask.png",
        "ground_truth/scratch/00000_mask.png", "labels.json", "test/crack/00001.png", "test/pit/00002.png", "test/scratch/00000.png"]


@pytest.mark.parametrize(("first", "twin"), [("scratch", "Scratch"), ("scratch", "scratch_"), ("scratch", "scratch "),
                                            (unicodedata.normalize("NFC", "scratché"), unicodedata.normalize("NFD", "scratché"))])
def test_two_type_folders_that_read_as_one_name_are_refused(tmp_path, capsys, first, twin):
    """`scratch/` beside `Scratch/` (or `scratch_/`; `scratché/` composed and decomposed) made two types of one: a scratch
    was named at about half its confidence, and the cross-validated accuracy counted the two as confused."""
    from tests.model.types_data import write_labels

    labels = write_labels(tmp_path / "labels", 3, ("blob", "scratch"))
    (labels / "scratch").rename(labels / first)
    write_labels(tmp_path / "more", 3, ("scratch",), start=10)
    (tmp_path / "more" / "scratch").rename(labels / twin)
    rc, _, err = cli(capsys, "eval", "efficientnet-lite0", labels, "--shots", 1, "--seeds", 1, "--size", 64)
    assert_one_line_error(rc, err, repr(first), repr(twin), "one folder")


def test_shots_all_with_one_example_of_a_type_does_not_say_lower_folds(tmp_path, capsys):
    """`--shots all --folds 2` with a type of one example said "lower --folds", which cannot go under 2; the fix is more
    examples of that type. Where lowering helps, it says to how many."""
    from tests.model.types_data import write_labels

    labels = write_labels(tmp_path / "labels", 3, ("blob", "stain"))
    write_labels(labels, 1, ("scratch",))
    rc, _, err = cli(capsys, "eval", "efficientnet-lite0", labels, "--shots", "all", "--folds", 2, "--size", 64)
    assert_one_line_error(rc, err, "type scratch has 1 images", "add scratch examples")
    assert "lower --folds" not in err
    (labels / "scratch").rename(tmp_path / "aside")
    rc, _, err = cli(capsys, "eval", "efficientnet-lite0", labels, "--shots", "all", "--folds", 5, "--size", 64)
    assert_one_line_error(rc, err, "lower --folds (to 3 at most)")


def test_a_good_folder_of_links_that_lead_nowhere_is_said_so(tmp_path, capsys):
    """A good folder whose images are links to a share that is gone said "no images found" (the files are there, as
    links); and links left out beside usable images went unsaid, where fit notes them."""
    good = tmp_path / "good"
    good.mkdir()
    for i in range(3):
        (good / f"{i}.png").symlink_to(tmp_path / "gone" / f"{i}.png")
    rc, _, err = cli(capsys, "synth", good, "--out", tmp_path / "out", "--n", 2)
    assert_one_line_error(rc, err, "3 image link(s) lead nowhere", str(tmp_path / "gone" / "0.png"))

    cv2.imwrite(str(good / "real.png"), good_image(0, 48))
    rc, _, err = cli(capsys, "synth", good, "--out", tmp_path / "out", "--n", 2)
    assert rc == 0, err
    assert "3 link(s) in" in err and "lead nowhere" in err


def test_a_type_folder_of_links_that_lead_nowhere_is_said_so(tmp_path, capsys):
    """A type folder whose examples are links to a share that is gone was told to "add examples of this type"."""
    from tests.model.types_data import write_labels

    labels = write_labels(tmp_path / "labels", 2, ("blob",))
    (labels / "scratch").mkdir()
    (labels / "scratch" / "001.png").symlink_to(tmp_path / "gone" / "001.png")
    rc, _, err = cli(capsys, "eval", "efficientnet-lite0", labels, "--shots", 1, "--size", 64)
    assert_one_line_error(rc, err, str(labels / "scratch"), "1 image link(s) lead nowhere", str(tmp_path / "gone" / "001.png"))


@pytest.mark.parametrize("layout", ["plain", "mvtec"])
def test_fit_on_good_images_that_are_all_links_leading_nowhere_is_said_so(tmp_path, capsys, layout):
    """fit said "no good images found ... put good parts there" of a folder whose images were there, as links to a share gone."""
    data = tmp_path / "data"
    good = data / "train" / "good" if layout == "mvtec" else data
    good.mkdir(parents=True)
    for i in range(6):
        (good / f"{i}.png").symlink_to(tmp_path / "gone" / f"{i}.png")
    rc, _, err = cli(capsys, "fit", data, "--out", tmp_path / "ck")
    assert_one_line_error(rc, err, f"data {good}: no good images: its 6 image link(s) lead nowhere", str(tmp_path / "gone" / "0.png"),
                          "mount or copy what they point to")


def test_references_beyond_the_training_images_allocate_for_those_only(tiny_data):
    """--references 20000 on a few images allocated the reference buffers for all 20,000 before keeping the few (2.1 GB
    at 64 px), and 10**23 ended in an overflow traceback."""
    from model.fit import FitOptions, fit_good_only
    from tests.model.test_fit import _few

    net, _ = fit_good_only(_few(tiny_data, 5), FitOptions(input_size=64, references=10**23, ref_k=2))
    assert net.config.references == net.head.references == net.head.ref_emb.shape[0] == 5
