"""AVIF, which cameras and phones save more and more: a folder's .avif files were neither read nor named (skipped unsaid),
and an AVIF image sequence was inspected as its first frame. Read where the running Pillow reads AVIF (its wheels from
11.3), else refused and set aside by name as HEIC is."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.errors import InspectorError
from model.images import AVIF_READ, FORMATS, decode_image, read_image, read_image_header, scan_images
from tests.cli import assert_one_line_error, cli
from tests.inspector.conftest import wait_until
from tests.inspector.test_sources import drop, watcher
from tests.synthetic import good_image

ROOT = Path(__file__).resolve().parents[2]
writes_avif = pytest.mark.skipif(not AVIF_READ, reason="this Pillow cannot write AVIF (Pillow 11.3+ wheels can)")
ORIENTATION = 0x0112  # the EXIF tag


def _avif(path: Path, rgb: np.ndarray, **kwargs) -> Path:
    """`rgb` as an AVIF near-lossless (quality 100, no chroma subsampling): within a few levels of its PNG."""
    Image.fromarray(rgb).save(path, format="AVIF", quality=100, subsampling="4:4:4", **kwargs)
    return path


def _as_avif(tree: Path) -> Path:
    """An MVTec tree's images (not its masks) written as AVIF in place of PNG."""
    for png in tree.rglob("*.png"):
        if not png.stem.endswith("_mask"):
            _avif(png.with_suffix(".avif"), np.asarray(Image.open(png).convert("RGB")))
            png.unlink()
    return tree


@writes_avif
def test_a_folder_of_avif_fits_and_inspects_like_the_png_of_its_pixels(tiny_data, tiny_ckpt, tmp_path, capsys):
    from model.data import load_dataset
    from model.fit import FitOptions, fit

    avif = _as_avif(shutil.copytree(tiny_data, tmp_path / "avif"))
    assert "AVIF" in FORMATS
    png_set, avif_set = load_dataset(tiny_data), load_dataset(avif)
    assert len(avif_set.train) == len(png_set.train) and len(avif_set.test) == len(png_set.test)
    for a, b in zip(png_set.train, avif_set.train):
        assert b.path.suffix == ".avif"
        assert np.abs(read_image(a.path).astype(int) - read_image(b.path).astype(int)).mean() < 2  # AVIF is lossy
    _, report = fit(avif_set, FitOptions(input_size=64, coreset_ratio=0.25, batch_size=8))
    assert report.training["n_images"] == len(png_set.train), report.training

    scores = {}
    for name, folder in (("png", tiny_data / "test"), ("avif", avif / "test")):
        rc, out, err = cli(capsys, "inspect", tiny_ckpt, folder, "--json")
        assert rc == 0, err
        body = json.loads(out)
        scores[name] = {Path(r["source"]).relative_to(folder).with_suffix("").as_posix(): (r["verdict"], r["score"], r["threshold"])
                        for r in body["results"]}
    assert len(scores["avif"]) == len(scores["png"]) == 8
    for key, (verdict, score, threshold) in scores["png"].items():
        assert scores["avif"][key][0] == verdict, key
        assert abs(scores["avif"][key][1] - score) < 0.1 * threshold, (key, scores["avif"][key], score)  # a few levels off


@writes_avif
def test_an_avif_is_turned_upright_by_its_exif_orientation_in_a_folder_as_named(tmp_path):
    rgb = good_image(3, 96)[:64]  # 96 wide, 64 high
    rgb[:8, :8] = (250, 20, 20)  # a mark top left, to see the turn
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # stored on its side: turned 90 degrees clockwise to show it upright
    _avif(tmp_path / "side.avif", rgb, exif=exif)
    assert [p.name for p in scan_images(tmp_path).images] == ["side.avif"]
    upright = read_image(tmp_path / "side.avif")
    assert upright.shape == (96, 64, 3)
    assert np.abs(upright.astype(int) - np.rot90(rgb, -1).astype(int)).mean() < 2


@writes_avif
def test_an_avif_image_sequence_is_refused_as_an_animated_webp_is(tmp_path):
    """Only the first frame was inspected: a defect on another passed unseen."""
    frames = [Image.fromarray(good_image(i, 64)) for i in range(2)]
    frames[0].save(tmp_path / "seq.avif", save_all=True, append_images=frames[1:], quality=90)
    for read in (read_image, read_image_header, lambda p: decode_image(p.read_bytes(), "payload")):
        with pytest.raises(InspectorError, match=r"^image .*: holds several frames or pages; save each as its own image$"):
            read(tmp_path / "seq.avif")


@writes_avif
def test_an_avif_cut_short_is_named_as_avif(tmp_path):
    data = _avif(tmp_path / "a.avif", good_image(1, 64)).read_bytes()
    with pytest.raises(InspectorError, match=r"the AVIF data is damaged or cut short; save or send it again$"):
        decode_image(data[: len(data) // 2], "payload")


@writes_avif
def test_a_watched_folder_takes_an_avif(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    frames: list = []
    w = watcher(folder, "move", frames)
    try:
        drop(folder / "P1.avif", _avif(tmp_path / "P1.avif", good_image(1, 64)).read_bytes())
        wait_until(lambda: frames, 60, "the AVIF read")
    finally:
        w.stop()
    assert [f.serial for f in frames] == ["P1"]
    assert np.abs(decode_image(frames[0].encoded).astype(int) - good_image(1, 64).astype(int)).mean() < 2


# -- a Pillow that cannot read AVIF: decided at import, so seen in a fresh interpreter ------------------------------------
NO_AVIF = """
import sys
sys.modules["PIL._avif"] = None  # a Pillow built without libavif: AvifImagePlugin.SUPPORTED and features' "avif" False
if {old!r}:
    import PIL
    import PIL.Image
    PIL.__version__ = PIL.Image.__version__ = "10.4.0"  # pyproject's least, older than AVIF
"""


def _without_avif(script: str, old: bool = False) -> list[str]:
    """The lines `script` prints, run where Pillow reads no AVIF."""
    code = NO_AVIF.format(old=old) + textwrap.dedent(script)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@writes_avif
@pytest.mark.parametrize("old", [False, True], ids=["built-without", "older"])
def test_where_pillow_reads_no_avif_a_folder_names_its_avif_files_and_a_file_is_refused(tmp_path, old):
    (tmp_path / "phone").mkdir()
    _avif(tmp_path / "phone" / "IMG_1.avif", good_image(1, 64))
    (tmp_path / "mixed").mkdir()
    Image.fromarray(good_image(2, 64)).save(tmp_path / "mixed" / "0.png")
    shutil.copy(tmp_path / "phone" / "IMG_1.avif", tmp_path / "mixed" / "1.avif")
    shutil.copy(tmp_path / "phone" / "IMG_1.avif", tmp_path / "sent.jpg")  # AVIF bytes under another name
    lines = _without_avif(f"""
        from pathlib import Path
        from model.errors import InspectorError
        from model.images import FORMATS, broken_links_note, decode_image, only_dead_links, read_image, scan_images
        tmp = Path({str(tmp_path)!r})
        print(FORMATS)
        print(only_dead_links(scan_images(tmp / "phone")))
        scan = scan_images(tmp / "mixed")
        print([p.name for p in scan.images], [p.name for p in scan.unread])
        print(broken_links_note(scan, tmp / "mixed")[0])
        for read in (lambda: read_image(tmp / "phone" / "IMG_1.avif"), lambda: read_image(tmp / "sent.jpg"),
                     lambda: decode_image((tmp / "sent.jpg").read_bytes())):
            try:
                read()
            except InspectorError as exc:
                print(exc)
    """, old)
    fix = ("install Pillow 11.3 or later (pip install -U pillow)" if old else
           f"install PyPI's wheel of Pillow (pip install --force-reinstall pillow; this Pillow {Image.__version__} was built without AVIF)")
    assert "AVIF" not in lines[0]
    assert lines[1].startswith(f"its 1 image file(s) are .avif (e.g. {tmp_path / 'phone' / 'IMG_1.avif'}), which are not read; {fix}")
    assert lines[1].endswith("to read the AVIF ones, or convert them to PNG or TIFF")
    assert lines[2] == "['0.png'] ['1.avif']"
    assert lines[3].startswith(f"1 image file(s) in {tmp_path / 'mixed'} were left out (e.g. {tmp_path / 'mixed' / '1.avif'}): "
                               f".avif files are not read; {fix}")
    assert lines[4].startswith(f"image {tmp_path / 'phone' / 'IMG_1.avif'}: an AVIF file, which is not read; {fix}")
    assert lines[4].endswith("which reads it, or convert it to PNG or TIFF")
    assert lines[5].startswith(f"image {tmp_path / 'sent.jpg'}: an AVIF image, which is not read; {fix}")
    assert lines[6].startswith(f"image payload: an AVIF image, which is not read; {fix}")


@writes_avif
def test_where_pillow_reads_no_avif_the_cli_and_a_watched_folder_name_the_avif(tmp_path, tiny_ckpt):
    (tmp_path / "phone").mkdir()
    _avif(tmp_path / "phone" / "IMG_1.avif", good_image(1, 64))
    (tmp_path / "in").mkdir()
    lines = _without_avif(f"""
        import contextlib, io
        from pathlib import Path
        from inspector.cli import main
        from tests.inspector.conftest import wait_until
        from tests.inspector.test_sources import drop, watcher
        tmp = Path({str(tmp_path)!r})
        for target in (tmp / "phone", tmp / "phone" / "IMG_1.avif"):
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                rc = main(["inspect", {str(tiny_ckpt)!r}, str(target)])
            print(rc, repr(err.getvalue()))
        said = []
        w = watcher(tmp / "in", "move", [])
        w.on_set_aside = lambda text, source, serial: said.append(text)
        try:
            drop(tmp / "in" / "P0.avif", (tmp / "phone" / "IMG_1.avif").read_bytes())
            wait_until(lambda: said, 60, "the AVIF set aside")
        finally:
            w.stop()
        print(said[0])
        print(sorted(p.name for p in (tmp / "in" / "rejected").iterdir()))
    """)
    for line, needle in zip(lines[:2], ("phone: no images: its 1 image file(s) are .avif (e.g.", "IMG_1.avif: an AVIF file, which is not read")):
        rc, err = line.split(" ", 1)
        assert_one_line_error(int(rc), ast.literal_eval(err), needle, "install PyPI's wheel of Pillow")
    assert lines[2].startswith("P0.avif is an AVIF file, which is not read; install PyPI's wheel of Pillow"), lines[2]
    assert "which reads it, or have the camera write PNG, JPEG or TIFF; set aside in rejected/" in lines[2], lines[2]
    assert lines[3] == "['P0.avif']"
