"""A picture's long file name in the validation gallery broke anywhere in its PDF ("..._2026_12_0|7_shift..."): it breaks
at its underscores first now, as it did at its / : and ."""

from __future__ import annotations

import re
import subprocess

import pytest

from reports.render import breakable
from reports.validation import render_validation

from .conftest import need
from .test_validation import run_of


def test_breakable_gives_a_long_name_a_chance_after_each_underscore_between_words():
    assert breakable("line3_camera2_part_000123.png") == "line3_<wbr>camera2_<wbr>part_<wbr>000123<wbr>.png"
    assert breakable("test/good/exp6_num_972.jpg") == "test/<wbr>good/<wbr>exp6_num_972<wbr>.jpg"  # short: it fits a line
    assert breakable("__init__") == "__init__" and breakable("plain") == "plain"


def test_a_long_name_in_the_validation_gallery_breaks_at_its_underscores(tmp_path):
    pytest.importorskip("weasyprint", reason="PDF reports need the pdf extra (weasyprint)")
    labels = ["good"] * 6 + ["crack"] * 2
    run = run_of([0.0] * 4 + [2.0] * 2 + [0.5, 2.0], labels)
    run.names = [f"test/{label}/line3_camera2_2026_12_07_shift_b_lot_4471_part_{i:06d}.jpg" for i, label in enumerate(labels)]
    pdf = render_validation(run, tmp_path, formats=("pdf",), lang="en")["pdf"]
    captions = subprocess.run([need("pdftotext"), str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    shown = [run.names[i].rsplit("/", 1)[1].removesuffix(".jpg") for group in run.examples() for i in group]
    assert shown and any("\n" in m.group(0) for stem in shown for m in re.finditer(r"\s*".join(map(re.escape, stem)), captions))
    for stem in shown:  # wrapped (above), and only after an underscore or before the extension
        assert re.search(r"_\s*".join(map(re.escape, stem.split("_"))) + r"\s*\.jpg", captions), stem
