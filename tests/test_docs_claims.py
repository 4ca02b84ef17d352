"""README.md, docs/ and configs/: what they say of image formats, framing warnings,
URL scrubbing, FAIL reports rendered again, the HTTP port, `--shots` and synth's checks is what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli import assert_one_line_error, cli

ROOT = Path(__file__).resolve().parents[1]


def _text(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def _paragraph(name: str, anchor: str) -> str:
    """The paragraph (between blank lines) of `name` that holds `anchor`, its lines joined by spaces."""
    found = [p for p in re.split(r"\n\s*\n", _text(name)) if anchor in " ".join(p.split())]
    assert len(found) == 1, (name, anchor, len(found))
    return " ".join(found[0].split())


def _unread_kinds() -> set[str]:
    from model.images import UNREAD_SUFFIXES

    return set(UNREAD_SUFFIXES.values())


def test_the_formats_said_for_good_images_are_those_read_and_refused():
    """The README named PGM/PPM/PBM but not PNM, and of the formats refused by name only HEIC and camera raw (HEIF, JPEG
    XL and OpenEXR are refused too)."""
    from model.images import IMAGE_SUFFIXES

    said = _paragraph("docs/fit.md", "Put good images of the part in a folder")
    netpbm = [s[1:].upper() for s in IMAGE_SUFFIXES if s in (".pgm", ".ppm", ".pnm", ".pbm")]
    assert len(netpbm) == 4
    assert all(name in said for name in netpbm), netpbm
    assert all(kind in said for kind in _unread_kinds()), sorted(_unread_kinds())


def test_the_watched_folder_says_where_files_of_unread_formats_go():
    """A watched folder sets HEIC and camera raw files aside in rejected/ with why; the README and station-folder.yaml
    said that only the formats read are taken, the others left where they are."""
    readme = _paragraph("docs/serve.md", "follows no links")
    comment = " ".join(line.lstrip("# ") for line in _text("configs/station-folder.yaml").splitlines() if line.startswith("#"))
    for text in (readme, comment):
        assert "rejected" in text
        assert all(kind in text for kind in _unread_kinds()), (sorted(_unread_kinds()), text[:200])


def test_a_fixed_roi_warns_of_the_frame_size_where_the_roi_is_described():
    """A fixed --roi warns of a frame 2 % off the training frames' size; the README's region-of-interest paragraph said
    only that a frame without the region is refused."""
    from inspector.api import FIXED_REGION_SLACK, unlike_training

    said = _paragraph("docs/fit.md", "give a region of interest")
    slack = round((FIXED_REGION_SLACK - 1) * 100)
    assert f"{slack} % beyond the training frames'" in said and "kind `size`" in said
    sizes = {"min": [200, 100], "max": [200, 100], "aspect": [2.0, 2.0]}
    assert unlike_training((100, 200 * (100 + slack + 1) // 100), sizes, fixed_region=True)
    assert unlike_training((100, 200 * (100 + slack - 1) // 100), sizes, fixed_region=True) is None


def test_the_url_scrubbing_example_is_what_the_station_shows():
    """The README said a stream's user name, password and query were kept out of records and logs; safe_url also hides
    fragments and path parameters, in config errors and trigger errors too."""
    from inspector.config import safe_url

    said = _paragraph("docs/serve.md", "kept out of records")
    given, shown = re.search(r"`([a-z]+://[^`]+)` is shown as `([^`]+)`", said).groups()
    assert safe_url(given) == shown
    assert "fragment" in said and "path parameters" in said and "config errors" in said


def test_the_fail_reports_rendered_again_are_bounded_as_said():
    """The README said a FAIL report left unrendered is rendered later, not which: this station's FAILs of the last day,
    the newest 500, and up to 500 set aside while the queue is full."""
    from datetime import timedelta

    from inspector.hooks import MISSING_MOST, MISSING_WITHIN

    said = _paragraph("docs/reports.md", "`reports.missing`")
    assert MISSING_WITHIN == timedelta(days=1) and "FAILs of the last day" in said
    assert said.count(f"{MISSING_MOST}") == 2, said


def test_the_http_limits_are_as_said():
    """32 requests answered at once, 256 connections read, each let go 10 s after its last byte, 30 s after it came; a
    newcomer beyond the 256 closes the longest-waiting, which the README did not say."""
    from inspector import health

    said = _paragraph("docs/serve.md", "requests are answered at once")
    assert f"{health.HTTP_CLIENTS} requests are answered at once" in said
    assert f"{health._Server.WAITING} are read at once (a newcomer beyond closes the longest-waiting)" in said
    assert f"each let go {health.HTTP_TIMEOUT_S:g} s after its last byte and {health.HTTP_REQUEST_S:g} s after it came" in said


def test_the_shift_report_doc_names_every_kind_of_warning():
    """docs/reports.md listed the warnings a shift report counts without a part found past the frame's edge (kind edge),
    nor overexposed and blank frames."""
    from reports.warnings import KNOWN

    said = _paragraph("docs/reports.md", "kind of warning")
    phrases = {"size": "size", "locate": "found only weakly", "edge": "out of view", "dark": "too dark",
               "overexposed": "overexposed", "blank": "without contrast", "blurred": "blurred"}
    kinds = {kind for kind, _, _ in KNOWN} - {"damaged"}  # damaged: the store's, of a record it could not read
    assert kinds == set(phrases), kinds
    assert all(phrase in said for phrase in phrases.values()), [k for k, p in phrases.items() if p not in said]


def test_the_validation_report_doc_names_the_framing_note():
    """eval notes test images inspection would warn about for how the part lies (framing_warnings), and the validation
    report shows that note; docs/reports.md listed only the image-quality one."""
    from model.evaluate import FRAMING_KINDS

    said = _paragraph("docs/reports.md", "the notes `eval` makes")
    assert set(FRAMING_KINDS) == {"size", "locate", "edge"}
    assert all(p in said for p in ("how the part lies in the frame", "size unlike", "found only weakly", "past the frame's edge"))


def test_the_types_doc_shows_the_scored_line_as_printed(capsys):
    """`eval --shots` says how many images of each type were scored; docs/types.md quotes that line."""
    from inspector.commands.types_eval import print_shots

    metrics = {k: 1.0 for k in ("type_accuracy", "type_macro_f1", "type_accuracy_open_set", "type_unknown_rate")}
    print_shots({"shots": 1, "folds": None, "seeds": 1, "region": "map", "classifier": "logreg", "unknown_rate": 0.05,
                 "classes": ["crack", "pit"], "counts": {"crack": 10, "pit": 16}, **metrics})
    line = capsys.readouterr().out.splitlines()[1].strip()
    assert f"`{line}`" in _text("docs/types.md"), line


def test_the_types_doc_quotes_the_short_types_refusal(tmp_path, capsys):
    """docs/types.md quotes the refusal of a `--shots` a type has too few images for; the quote is the CLI's."""
    from tests.model.types_data import write_labels

    labels = write_labels(tmp_path / "labels", 7, ("blob",))
    write_labels(labels, 3, ("scratch",))
    rc, _, err = cli(capsys, "eval", "efficientnet-lite0", labels, "--shots", 5, "--size", 64)
    quote = re.search(r"`(give --shots \d+ at most, or add examples of) \.\.\.`", " ".join(_text("docs/types.md").split())).group(1)
    assert_one_line_error(rc, err, quote)


def test_the_synth_doc_lists_the_refusals_it_makes(tmp_path, capsys):
    """docs/synth.md's refusals lacked `--n` below 1 and a set --out's disk cannot hold, both refused before writing."""
    import cv2

    from tests.synthetic import good_image

    said = _paragraph("docs/synth.md", "Refused with one line")
    assert "`--n` below 1" in said and "disk cannot hold" in said and "largest `--n` that fits" in said
    good = tmp_path / "good"
    good.mkdir()
    for i in range(3):
        cv2.imwrite(str(good / f"{i}.png"), good_image(i, 48))
    rc, _, err = cli(capsys, "synth", good, "--out", tmp_path / "out", "--n", 0)
    assert_one_line_error(rc, err, "--n 0")
    rc, _, err = cli(capsys, "synth", good, "--out", tmp_path / "out", "--n", 10**15)
    assert_one_line_error(rc, err, "MB free on its disk", "give --n")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
