"""Hostile command-line values (a fuzz of every subcommand's options): each ends in one line on stderr, exit code 2,
never a traceback, and nothing is written where the user did not ask."""

from __future__ import annotations

import pytest

from tests.cli import assert_one_line_error, cli


@pytest.fixture
def here(tmp_path, monkeypatch):
    """An empty working folder: a blank path reads as '.', and nothing may land or be read there."""
    work = tmp_path / "here"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


# `"$VAR"` with VAR unset is '': pathlib reads it as '.', the working folder
BLANK_PATHS = [
    pytest.param(["inspect", "", "{image}"], "argument model: ''", id="inspect-model"),  # a ValueError traceback
    pytest.param(["inspect", "{ckpt}", ""], "argument IMAGE_OR_DIR: ''", id="inspect-image"),  # inspected the working folder
    pytest.param(["inspect", "{ckpt}", "{image}", "--overlays", ""], "argument --overlays: ''", id="inspect-overlays"),  # none, silently
    pytest.param(["threshold", "", "--dry-run"], "argument MODEL: ''", id="threshold-model"),  # a ValueError traceback
    pytest.param(["eval", "", "{data}"], "argument model: ''", id="eval-model"),  # a ValueError traceback
    pytest.param(["eval", "{ckpt}", " "], "argument data: ' '", id="eval-data"),  # "data  : eval needs both test/good ..."
    pytest.param(["export", "", "--format", "onnx", "--out", "{tmp}/exp"], "argument checkpoint: ''", id="export-checkpoint"),
    pytest.param(["synth", "{good}", "--out", "", "--n", "2", "--force"], "argument --out: ''", id="synth-out"),  # wrote here
    pytest.param(["report", "--db", "{tmp}/store", "--from", "2026-11-26", "--out", ""], "argument --out: ''", id="report-out"),
    pytest.param(["report", "--db", "{tmp}/store", "--config", "", "--from", "2026-11-26", "--out", "{tmp}/r"], "argument --config: ''",
                 id="report-config"),  # taken as no config
    pytest.param(["review", "--db", "{tmp}/store", "--config", "", "x", "--truth", "good"], "argument --config: ''", id="review-config"),
]


@pytest.mark.parametrize("argv, needle", BLANK_PATHS)
def test_a_blank_path_is_refused_not_read_as_the_working_folder(tiny_ckpt, tiny_data, tmp_path, here, capsys, argv, needle):
    from inspector.store import Store

    Store(tmp_path / "store").close()
    good = tiny_data / "train" / "good"
    names = {"ckpt": tiny_ckpt, "data": tiny_data, "good": good, "image": sorted(good.iterdir())[0], "tmp": tmp_path}
    rc, out, err = cli(capsys, *[a.format(**names) for a in argv])
    assert_one_line_error(rc, err, needle, "names no")
    assert not any(here.iterdir())


def test_a_path_too_long_is_an_input_to_fix_not_a_retry(tiny_ckpt, tmp_path, capsys):
    """ENAMETOOLONG ended in exit 75 (a unit restarts on it, forever) with 'check the folder and the disk'."""
    rc, out, err = cli(capsys, "inspect", tiny_ckpt, tmp_path / ("x" * 300 + ".png"))
    assert_one_line_error(rc, err, "x" * 300, "File name too long", "give a shorter path")


@pytest.mark.parametrize("name", ["part\n2.png", "part\r2.png", "part\u20282.png", "part\x0c2.png"])
def test_a_line_break_in_a_name_stays_on_the_one_error_line(tiny_ckpt, tmp_path, capsys, name):
    """A name holding a newline split the error over two lines, the second without 'error:'."""
    rc, out, err = cli(capsys, "inspect", tiny_ckpt, tmp_path / name)
    assert_one_line_error(rc, err, "no such file or folder", repr(name)[1:-1])


@pytest.mark.parametrize("argv", [["threshold", "-station3"], ["inspect", "-station3", "part.png"], ["eval", "-station3", "data"]])
def test_a_model_folder_whose_name_starts_with_a_dash_is_named_with_the_fix(here, capsys, argv):
    """A checkpoint copied as `-station3` read as an option: "the following arguments are required: MODEL", naming
    neither the folder nor how to give it."""
    (here / "-station3").mkdir()
    rc, out, err = cli(capsys, *argv)
    assert_one_line_error(rc, err, "-station3 reads as an option", "write ./-station3 (or put -- before it)")
    rc, out, err = cli(capsys, "threshold", "-nowhere")  # no such file: argparse's own words, nothing added
    assert_one_line_error(rc, err, "the following arguments are required: MODEL")
    assert "reads as an option" not in err


def test_several_config_problems_are_still_one_to_a_line(tmp_path, capsys):
    config = tmp_path / "station.yaml"
    config.write_text("station: {name: s}\nmodel: {path: 3}\nsource: {type: nope}\n")
    rc, out, err = cli(capsys, "serve", "--config", config)
    lines = err.splitlines()
    assert rc == 2 and lines[0].startswith("error: config ") and "problems:" in lines[0] and len(lines) > 2, err
    assert all(line.startswith("  ") for line in lines[1:]) and "Traceback" not in err


@pytest.mark.parametrize("image, what", [("folder", "a folder, not an image file"), ("/dev/null", "not a regular file (a device, FIFO or socket)"),
                                         ("missing.png", "no such file")])
def test_bench_serve_image_that_is_no_file_is_named_for_what_it_is(tmp_path, capsys, monkeypatch, image, what):
    """A folder or /dev/null given as --image was said to be 'no such file', of a path that is there."""
    from types import SimpleNamespace

    import inspector.commands.bench_serve as bs
    import inspector.config

    cfg = SimpleNamespace(mqtt=SimpleNamespace(protocol="5", max_payload_bytes=2048), model=SimpleNamespace(max_image_pixels=None))
    monkeypatch.setattr(inspector.config, "load_config", lambda path: cfg)
    monkeypatch.setattr(bs, "connect", lambda cfg: pytest.fail("connected: inputs would be sent"))
    (tmp_path / "folder").mkdir()
    path = image if image.startswith("/") else tmp_path / image
    rc, out, err = cli(capsys, "bench", "serve", "--config", tmp_path / "st.yaml", "--image", path)
    assert_one_line_error(rc, err, f"--image {path}: {what}; give an image file")


def test_review_reads_its_config_beside_db(tmp_path, capsys):
    """`review --db STORE --config WRONG.yaml` wrote the review without reading the config, which `report` refuses."""
    from inspector.store import Store

    Store(tmp_path / "store").close()
    (tmp_path / "notes.txt").write_text("hello\n")
    rc, out, err = cli(capsys, "review", "--db", tmp_path / "store", "--config", tmp_path / "notes.txt", "x", "--truth", "good")
    assert_one_line_error(rc, err, f"config {tmp_path / 'notes.txt'}")
