"""Image files and folder walks: the image formats a folder holds are read or said to be left out, never skipped unsaid;
a deep PPM or JPEG 2000 reads as deep as a PNG; a subfolder `inspect` cannot list leaves the rest of the tree inspected."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from model.errors import InspectorError
from model.images import _stretch, broken_links_note, read_image, scan_images
from tests.access import as_other_user, cli_as_other_user, needs_fork
from tests.cli import assert_one_line_error, cli
from tests.synthetic import good_image, write_mvtec

RNG = np.random.default_rng(56)
GREY = RNG.integers(0, 256, (32, 40), dtype=np.uint8)
COLOUR = RNG.integers(0, 256, (32, 40, 3), dtype=np.uint8)
GREY12 = RNG.integers(0, 4096, (32, 40)).astype(np.uint16)  # a 12-bit camera's levels in 16-bit samples
COLOUR12 = RNG.integers(0, 4096, (32, 40, 3)).astype(np.uint16)


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def _plain(path: Path, magic: str, arr: np.ndarray, maxval: int | None) -> Path:
    """A plain (ASCII) Netpbm file of `arr`."""
    head = f"{magic}\n{arr.shape[1]} {arr.shape[0]}\n" + (f"{maxval}\n" if maxval else "")
    path.write_text(head + " ".join(map(str, arr.ravel())) + "\n")
    return path


def test_netpbm_files_read_as_their_pixels(tmp_path):
    """PGM, PBM and PPM (raw and plain, 8 and 16 bits) read exactly; a 16-bit colour PPM was scaled by Pillow to 8 bits,
    and a 12-bit camera's frame read almost black (max 16 of 255) where its PNG is stretched over its range."""
    Image.fromarray(GREY).save(tmp_path / "g.pgm")
    Image.fromarray(COLOUR).save(tmp_path / "c.ppm")
    Image.fromarray(COLOUR).save(tmp_path / "c.pnm")
    Image.fromarray(GREY > 127).save(tmp_path / "b.pbm")
    cv2.imwrite(str(tmp_path / "g16.pgm"), GREY12)
    (tmp_path / "c16.ppm").write_bytes(b"P6\n40 32\n65535\n" + COLOUR12.astype(">u2").tobytes())
    (tmp_path / "c12.ppm").write_bytes(b"P6\n40 32\n4095\n" + COLOUR12.astype(">u2").tobytes())
    expected = {
        "g.pgm": _rgb(GREY), "c.ppm": COLOUR, "c.pnm": COLOUR, "b.pbm": _rgb((GREY > 127).astype(np.uint8) * 255),
        "g16.pgm": _rgb(_stretch(GREY12)), "c16.ppm": _stretch(COLOUR12), "c12.ppm": _stretch(COLOUR12),
        _plain(tmp_path / "ga.pgm", "P2", GREY, 255).name: _rgb(GREY),
        _plain(tmp_path / "ca.ppm", "P3", COLOUR, 255).name: COLOUR,
        _plain(tmp_path / "ba.pbm", "P1", (GREY <= 127).astype(np.uint8), None).name: _rgb((GREY > 127).astype(np.uint8) * 255),
        _plain(tmp_path / "c12a.ppm", "P3", COLOUR12, 4095).name: _stretch(COLOUR12),
    }
    for name, want in expected.items():
        np.testing.assert_array_equal(read_image(tmp_path / name), want, err_msg=name)


def test_jpeg_2000_and_jpegs_other_names_read(tmp_path):
    """A 16-bit colour JPEG 2000 read as Pillow's top 8 bits, almost black; 8-bit ones, .jfif and .jpe read as usual."""
    Image.fromarray(COLOUR).save(tmp_path / "c.jp2")
    Image.fromarray(COLOUR).save(tmp_path / "c.j2k")
    np.testing.assert_array_equal(read_image(tmp_path / "c.jp2"), COLOUR)
    np.testing.assert_array_equal(read_image(tmp_path / "c.j2k"), COLOUR)
    assert cv2.imwrite(str(tmp_path / "c16.jp2"), COLOUR12[..., ::-1])
    decoded = cv2.imread(str(tmp_path / "c16.jp2"), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(read_image(tmp_path / "c16.jp2"), _stretch(decoded[..., ::-1]))
    Image.fromarray(COLOUR).save(tmp_path / "c.jpg", quality=95)
    for name in ("c.jfif", "c.jpe"):
        shutil.copy(tmp_path / "c.jpg", tmp_path / name)
        np.testing.assert_array_equal(read_image(tmp_path / name), read_image(tmp_path / "c.jpg"))


def test_image_files_not_read_are_refused_by_name(tmp_path):
    """A DNG (a TIFF to Pillow) was inspected as its thumbnail; a HEIC refused with "is it a PNG/JPEG/...?"."""
    Image.fromarray(COLOUR).save(tmp_path / "part.dng", format="TIFF")  # what Pillow sees of a DNG: its first IFD
    with pytest.raises(InspectorError, match=r"^image .*part.dng: a camera raw file, which is not read; convert it to PNG or TIFF"):
        read_image(tmp_path / "part.dng")
    from PIL import TiffImagePlugin

    from model.images import decode_image, read_image_header

    dng = TiffImagePlugin.ImageFileDirectory_v2()
    dng[50706], dng.tagtype[50706] = b"\x01\x04\x00\x00", 1  # DNGVersion 1.4: a DNG named .tif, or sent as bytes
    Image.fromarray(COLOUR).save(tmp_path / "raw.tif", tiffinfo=dng)
    for read in (read_image, read_image_header, lambda p: decode_image(p.read_bytes(), "payload")):
        with pytest.raises(InspectorError, match=r"^image .*: a camera raw \(DNG\) file, which is not read; convert it"):
            read(tmp_path / "raw.tif")
    (tmp_path / "part.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    with pytest.raises(InspectorError, match=r"^image .*part.HEIC: a HEIC file, which is not read; convert it"):
        read_image(tmp_path / "part.HEIC")


def _tree(root: Path) -> Path:
    (root / "a").mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(root / "a" / f"{i}.png"), good_image(i, 96))
    Image.fromarray(cv2.cvtColor(good_image(3, 96), cv2.COLOR_BGR2GRAY)).save(root / "a" / "3.pgm")
    Image.fromarray(good_image(4, 96)[..., ::-1]).save(root / "a" / "4.jfif", format="JPEG")
    (root / "a" / "5.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    (root / "a" / "6.DNG").write_bytes(b"II*\x00" + bytes(64))
    (root / "a" / "notes.txt").write_text("not an image: not said")
    (root / ".trash").mkdir()
    (root / ".trash" / "7.heic").write_bytes(b"x")  # in a hidden folder: left out as its images are, not said twice
    return root


def test_a_folder_walk_reads_the_new_suffixes_and_says_what_it_leaves_out(tmp_path):
    scan = scan_images(_tree(tmp_path / "tree"), recursive=True)
    assert [p.name for p in scan.images] == ["0.png", "1.png", "2.png", "3.pgm", "4.jfif"]
    assert [p.name for p in scan.unread] == ["5.heic", "6.DNG"]
    notes = broken_links_note(scan, tmp_path / "tree")
    assert notes[-1] == (f"2 image file(s) in {tmp_path / 'tree'} were left out (e.g. {tmp_path / 'tree' / 'a' / '5.heic'}): "
                         ".heic, .dng files are not read; convert them to PNG or TIFF to read them")


def test_inspect_of_a_tree_reads_netpbm_and_notes_what_it_cannot_read(tiny_ckpt, tmp_path, capsys):
    tree = _tree(tmp_path / "tree")
    rc, out, err = cli(capsys, "inspect", tiny_ckpt, tree)
    assert rc == 0, err
    assert "3.pgm" in out and "4.jfif" in out and "5 inspected" in out
    notes = [line for line in err.splitlines() if ".heic" in line]
    assert len(notes) == 1 and notes[0].startswith("note: 2 image file(s) in ") and ".heic, .dng files are not read" in notes[0], err
    (tmp_path / "phone").mkdir()
    shutil.copy(tree / "a" / "5.heic", tmp_path / "phone" / "IMG_0001.HEIC")
    rc, _, err = cli(capsys, "inspect", tiny_ckpt, tmp_path / "phone")  # "no images found" of a folder of them
    assert_one_line_error(rc, err, "phone: no images: its 1 image file(s) are .heic (e.g.", "which are not read; convert them")
    rc, _, err = cli(capsys, "inspect", tiny_ckpt, tree / "a" / "6.DNG")
    assert_one_line_error(rc, err, "6.DNG: a camera raw file, which is not read")


def test_masks_of_any_image_format_are_found(tmp_path):
    """`000_mask.pbm` (1-bit, a natural mask format) or `.jpeg` was no mask of 000.png: its image was taken as unmasked."""
    data = write_mvtec(tmp_path / "data", n_train=5, n_good_test=1, n_defect=2, size=32)
    gt = data / "ground_truth" / "blob"
    Image.open(gt / "000_mask.png").convert("1").save(gt / "000_mask.pbm")
    Image.open(gt / "001_mask.png").save(gt / "001_mask.jpeg", quality=100)
    want = {name: np.asarray(Image.open(gt / f"{name}_mask.png")) > 127 for name in ("000", "001")}
    for name in want:
        (gt / f"{name}_mask.png").unlink()
    from model.data import load_dataset
    from model.images import read_mask

    masks = {s.path.stem: s.mask_path for s in load_dataset(data).test if s.is_defect}
    assert {k: v.name for k, v in masks.items()} == {"000": "000_mask.pbm", "001": "001_mask.jpeg"}
    for name, path in masks.items():
        np.testing.assert_array_equal(read_mask(path, (32, 32)), want[name])


def _unlistable(monkeypatch, *denied: Path) -> None:
    """os.scandir refuses the folders `denied` as a folder of mode 0 does (root passes any mode)."""
    listing = os.scandir

    def scandir(path="."):
        if os.path.abspath(os.fspath(path)) in map(str, denied):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_inspect_of_a_tree_with_a_folder_it_cannot_list_inspects_the_rest(tiny_ckpt, tmp_path, capsys, monkeypatch):
    """One subfolder the user could not list stopped `inspect` of a line's whole tree: the readable images are inspected,
    the folder named as an unreadable image is, and the run exits 2."""
    tree = _tree(tmp_path / "tree")
    (tree / "b").mkdir()
    cv2.imwrite(str(tree / "b" / "0.png"), good_image(9, 96))
    _unlistable(monkeypatch, tree / "b")
    rc, out, err = cli(capsys, "inspect", tiny_ckpt, tree)
    assert rc == 2
    assert "a/0.png" in out and "b/0.png" not in out
    assert out.splitlines()[-1] == "5 inspected: 5 PASS, 0 FAIL, 1 folder(s) not read (see the errors above)", out
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: folder {tree / 'b'}: cannot be read (Permission denied); give this user read access to it, "
                      "or move it out of the folder given"], err
    rc, out, _ = cli(capsys, "inspect", tiny_ckpt, tree, tree / "a" / "..", "--json")  # the folder is named once, in the errors
    body = json.loads(out)
    assert rc == 2 and body["summary"]["inspected"] == 5
    assert [e["path"] for e in body["errors"]] == [str(tree / "b")]
    # nothing else to inspect: said as before, before anything is inspected
    (tmp_path / "only" / "sub").mkdir(parents=True)
    _unlistable(monkeypatch, tree / "b", tmp_path / "only" / "sub")
    rc, _, err = cli(capsys, "inspect", tiny_ckpt, tmp_path / "only")
    assert_one_line_error(rc, err, f"folder {tmp_path / 'only' / 'sub'}: cannot be read (Permission denied)")


def test_fit_still_stops_at_a_folder_it_cannot_list(tmp_path, monkeypatch):
    """Training on part of the data unsaid is worse than stopping: only inspect goes on."""
    tree = _tree(tmp_path / "tree")
    _unlistable(monkeypatch, tree / "a")
    with pytest.raises(InspectorError, match=r"folder .*a: cannot be read \(Permission denied\)"):
        scan_images(tree, recursive=True)
    assert scan_images(tree, recursive=True, skip_unreadable=True).unreadable[0][0] == tree / "a"


@needs_fork
@pytest.mark.parametrize("mode", [0o000, 0o444], ids=["unlistable", "listed-not-entered"])
def test_inspect_as_a_user_denied_a_subfolder(tiny_ckpt, public_dir, mode):
    """The operating system's own denial (root drops to nobody): mode 0, and mode r-- (listed, but no file in it can be
    looked at: a traceback-free stop before, at its first file)."""
    import inspector.api  # noqa: F401 - loaded before the child drops its rights
    import inspector.describe  # noqa: F401
    import inspector.overlay  # noqa: F401
    import model.synth.writer  # noqa: F401
    from inspector.cli import main

    ckpt = public_dir / "tiny.ckpt"
    shutil.copytree(tiny_ckpt, ckpt)
    for p in [ckpt, *ckpt.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    tree = public_dir / "tree"
    for i, sub in enumerate(("a", "b")):
        (tree / sub).mkdir(parents=True)
        cv2.imwrite(str(tree / sub / f"{i}.png"), good_image(i, 96))
        (tree / sub / f"{i}.png").chmod(0o644)
    tree.chmod(0o755)
    (tree / "a").chmod(0o755)
    (tree / "b").chmod(mode)
    if as_other_user(lambda: os.access(tree / "b", os.R_OK | os.X_OK))["value"]:
        pytest.skip("this user can enter a folder of this mode")
    rc, out, err = cli_as_other_user(main, "inspect", ckpt, tree)
    assert rc == 2, err
    assert "a/0.png" in out and "1 inspected: 1 PASS, 0 FAIL, 1 folder(s) not read" in out, out
    assert f"error: folder {tree / 'b'}: cannot be read (Permission denied)" in err and "Traceback" not in err, err


# -- model.images: suffixes, scan_images, walk_folders -------------------------------------------------------------------
# Edges found by mutating the code: each kills mutants the earlier tests let live; the expected values are worked out by
# hand from the documented rules.
READ = (".jfif", ".jpe", ".pgm", ".ppm", ".pnm", ".pbm", ".jp2", ".j2k")  # today's, besides png, jpg, bmp, tiff, webp, gif
UNREAD = {".heic": "HEIC", ".heif": "HEIF", ".jxl": "JPEG XL", ".exr": "OpenEXR", ".dng": "camera raw", ".raw": "camera raw",
          ".cr2": "camera raw", ".cr3": "camera raw", ".nef": "camera raw", ".arw": "camera raw", ".orf": "camera raw",
          ".rw2": "camera raw", ".raf": "camera raw"}


def test_a_scan_takes_every_read_suffix_and_says_every_unread_file(tmp_path):
    from model.images import scan_images

    (tmp_path / "a").mkdir()
    for suffix in (*READ, *UNREAD):
        (tmp_path / "a" / f"x{suffix}").write_bytes(b"x")
    (tmp_path / "z.HEIC").write_bytes(b"x")  # the top folder's is walked first, listed in path order
    (tmp_path / "a" / "._x.heic").write_bytes(b"\x00\x05\x16\x07" + bytes(8))  # macOS's metadata beside it: no image
    (tmp_path / "a" / "d.heic").mkdir()  # a folder so named
    os.mkfifo(tmp_path / "a" / "f.heic")  # no file: a FIFO so named
    scan = scan_images(tmp_path, recursive=True)
    assert [p.name for p in scan.images] == sorted(f"x{s}" for s in READ)
    assert [p.relative_to(tmp_path).as_posix() for p in scan.unread] == [*sorted(f"a/x{s}" for s in UNREAD), "z.HEIC"]


@pytest.mark.parametrize("suffix", sorted(UNREAD))
def test_each_unread_suffix_is_refused_by_name(tmp_path, suffix):
    from model.errors import InspectorError
    from model.images import read_image

    (tmp_path / f"p{suffix.upper()}").write_bytes(b"x")
    with pytest.raises(InspectorError, match=rf"^image .*p{suffix.upper()}: a {UNREAD[suffix]} file, which is not read; convert"):
        read_image(tmp_path / f"p{suffix.upper()}")


def test_what_is_said_of_unread_files_names_each_suffix_once(tmp_path):
    from model.images import Scan, broken_links_note, only_dead_links, scan_images

    for name in ("a.heic", "b.HEIC", "c.dng"):
        (tmp_path / name).write_bytes(b"x")
    scan = scan_images(tmp_path)
    assert only_dead_links(scan) == (f"its 3 image file(s) are .heic, .dng (e.g. {tmp_path / 'a.heic'}), which are not read; "
                                     "convert them to PNG or TIFF")
    assert broken_links_note(scan, tmp_path) == [f"3 image file(s) in {tmp_path} were left out (e.g. {tmp_path / 'a.heic'}): "
                                                 ".heic, .dng files are not read; convert them to PNG or TIFF to read them"]
    (tmp_path / "d.png").symlink_to(tmp_path / "gone.png")  # links leading nowhere are what is said first
    said = only_dead_links(Scan(unread=scan.unread, broken_links=[tmp_path / "d.png"]))
    assert said == f"its 1 image link(s) lead nowhere (e.g. {tmp_path / 'd.png'} -> {tmp_path / 'gone.png'}); mount or copy what they point to"


def test_the_folder_given_that_cannot_be_listed_stops_a_scan_and_a_hidden_one_below_is_passed(tmp_path, monkeypatch):
    from model.errors import InspectorError
    from model.images import scan_images

    (tmp_path / "tree" / ".trash").mkdir(parents=True)
    (tmp_path / "tree" / "0.png").write_bytes(b"x")
    _unlistable(monkeypatch, tmp_path / "tree" / ".trash")
    for skip in (False, True):  # another user's trash (mode 700) is no folder of images
        scan = scan_images(tmp_path / "tree", recursive=True, skip_unreadable=skip)
        assert [p.name for p in scan.images] == ["0.png"] and scan.unreadable == []
    _unlistable(monkeypatch, tmp_path / "tree")
    with pytest.raises(InspectorError, match=r"^folder .*tree: cannot be read \(Permission denied\)"):
        scan_images(tmp_path / "tree", recursive=True, skip_unreadable=True)


def _not_entered(monkeypatch, *denied: Path) -> None:
    """A file in the folders `denied` cannot be looked at, as in one of mode r-- (listed, not entered; root enters any)."""
    is_symlink = Path.is_symlink

    def looked_at(self: Path) -> bool:
        if self.parent in denied:
            raise PermissionError(13, "Permission denied", str(self))
        return is_symlink(self)

    monkeypatch.setattr(Path, "is_symlink", looked_at)


def test_a_folder_listed_but_not_entered_stops_a_scan_unless_below_and_skipped_or_hidden(tmp_path, monkeypatch):
    from model.errors import InspectorError
    from model.images import scan_images

    tree = tmp_path / "tree"
    for sub in ("a", "b", ".trash"):
        (tree / sub).mkdir(parents=True)
        (tree / sub / "0.png").write_bytes(b"x")
    (tree / "0.png").write_bytes(b"x")
    _not_entered(monkeypatch, tree / "b", tree / ".trash")
    with pytest.raises(InspectorError, match=r"^folder .*tree/b: cannot be read \(Permission denied\); give this user read"):
        scan_images(tree, recursive=True)
    scan = scan_images(tree, recursive=True, skip_unreadable=True)  # the trash's not said: its images are not read anyway
    assert [p.relative_to(tree).as_posix() for p in scan.images] == ["0.png", "a/0.png"]
    assert [p for p, _ in scan.unreadable] == [tree / "b"]
    _not_entered(monkeypatch, tree / "b", tree / ".trash", tree)
    with pytest.raises(InspectorError, match=r"^folder .*tree: cannot be read \(Permission denied\)"):  # the folder given
        scan_images(tree, recursive=True, skip_unreadable=True)
