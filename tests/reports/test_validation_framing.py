"""The validation report words eval's framing_warnings itself, beside its image-quality line and in its language: it
showed them only as eval's English note, "in English" even in a zh or es report."""

from __future__ import annotations

import html as html_
import re
from dataclasses import replace

from reports.render import Page
from reports.validation import validation_html
from tests.cli import cli
from tests.model.test_eval_framing_warnings import located  # noqa: F401 (the fixture: a --locate model and test images it warns about)
from tests.reports.test_validation import run_of

NOTE = ("framing: inspection would warn about 3 of the 4 test images (2 good, 1 defective): 1 of a size unlike the training "
        "images' (size), 1 whose part was found only weakly (locate), 1 whose part's region reaches past the frame's edge (edge); "
        "first: data/line1/test/good/001.png; check how the parts lie in those frames and the camera's framing, or fit on images like them")
OTHER = "1 test image could not be read and was left out: data/line1/test/crack/x.png"
FRAMING = {"checked": ["size", "locate", "edge"], "good": 2, "defect": 1, "kinds": {"size": 1, "locate": 1, "edge": 1},
           "examples": [{"file": "data/line1/test/good/001.png", "kind": "size"}, {"file": "data/line1/test/good/000.png", "kind": "locate"},
                        {"file": "data/line1/test/crack/002.png", "kind": "edge"}]}


def _run(**report):
    # eval's notes, as write_report passes them
    return replace(run_of([0.0, 0.5, 2.0, 0.2], ["good", "good", "crack", "crack"], **report), notes=[NOTE, OTHER])


def _line(html: str) -> str | None:
    found = re.search(r'<p class="note" id="framing-warnings">(.*?)</p>', html, re.S)
    return html_.unescape(" ".join(found.group(1).split())) if found else None


def _notes(html: str) -> list[str]:
    return [html_.unescape(n) for n in re.findall(r'<p class="note">(.*?)</p>', html, re.S)]


def test_framing_line_in_each_language_and_the_english_note_left_out():
    run = _run(framing_warnings=FRAMING, image_quality={"good": 1, "defect": 0, "causes": {"dark": 1}, "examples": []})
    en = validation_html(run, Page.of("en", ("html",), "UTC", None))
    assert _line(en) == ("2 good and 1 defect test images are framed so that inspection would warn about them (1 of a size unlike "
                         "the training images', 1 whose part was found only weakly, 1 whose part's region reaches past the frame's "
                         "edge; the first: test/good/001.png): check how the parts lie in those frames and the camera's framing, "
                         "or fit on images like them.")
    # beside the image-quality line, in the same section
    assert re.search(r'id="image-quality">[^<]*</p>\s*<p class="note" id="framing-warnings">', en)
    assert not any("framing:" in n for n in _notes(en)) and OTHER in _notes(en)  # the other notes stay
    zh = validation_html(run, Page.of("zh", ("html",), "UTC", None))
    assert _line(zh) == ("2 张良品和 1 张缺陷测试图像的取景会使检验对其发出警告（1 张尺寸与训练图像不同，1 张中零件仅被弱匹配到，"
                         "1 张中零件的区域超出了画面边缘；第一张：test/good/001.png）：请检查这些画面中零件的摆放和相机的取景，"
                         "或用与之相似的图像训练模型。")
    assert "framing:" not in zh
    es = validation_html(run, Page.of("es", ("html",), "UTC", None))
    assert _line(es).startswith("2 imágenes de prueba buenas y 1 defectuosas están encuadradas de modo que la inspección avisaría de "
                                "ellas (1 de un tamaño distinto del de las imágenes de entrenamiento, 1 cuya pieza se encontró solo "
                                "débilmente, 1 cuya región de la pieza sobrepasa el borde del fotograma; la primera: test/good/001.png)")
    assert "framing:" not in es


def test_counts_in_the_languages_numbers_and_a_kind_it_does_not_know_as_written():
    framing = {**FRAMING, "good": 12000, "defect": 0, "kinds": {"size": 12000, "tilt": 3},
               "examples": [{"file": "/elsewhere/a.png", "kind": "size"}]}
    es = _line(validation_html(_run(framing_warnings=framing), Page.of("es", ("html",), "UTC", None)))
    assert es.startswith("12.000 imágenes de prueba buenas y 0 defectuosas")
    assert "(12.000 de un tamaño distinto del de las imágenes de entrenamiento, 3 tilt; la primera: /elsewhere/a.png)" in es


def test_a_report_without_framing_warnings_is_as_before():
    old = _run()  # an eval JSON from before framing_warnings
    en = validation_html(old, Page.of("en", ("html",), "UTC", None))
    assert _line(en) is None and NOTE in _notes(en) and OTHER in _notes(en)
    # none warned (a model checked and found nothing): no line, as with image_quality
    none = _run(framing_warnings={"checked": ["size"], "good": 0, "defect": 0, "kinds": {}, "examples": []})
    assert _line(validation_html(none, Page.of("zh", ("html",), "UTC", None))) is None


def test_eval_report_of_a_located_model_shows_the_line_not_the_note(capsys, located, tmp_path):  # noqa: F811 (the fixture)
    # end to end: eval's framing_warnings of a --locate model, its first file named under the data folder
    data, model = located
    rc, _out, err = cli(capsys, "eval", model, data, "--no-overlap", "--report", tmp_path, "--format", "html", "--lang", "es")
    assert rc == 0, err
    (page,) = tmp_path.glob("*.html")
    html = page.read_text()
    line = _line(html)
    assert line.startswith("2 imágenes de prueba buenas y 1 defectuosas están encuadradas"), line
    assert "1 cuya pieza se encontró solo débilmente" in line and "1 cuya región de la pieza sobrepasa el borde del fotograma" in line
    assert re.search(r"; la primera: test/(good/(blank|edge)|blob/wide)\.png\)", line), line
    assert "framing:" not in html


# --- reports.validation: framing_warned, framing_line ----------------------------------------------------------------
# Edges found by mutating the code: each kills mutants the earlier tests let live; the expected values are worked out by
# hand from the documented rules.


def test_framing_warned_by_defect_images_alone_and_not_by_a_null():
    from reports.validation import framing_warned

    assert framing_warned({"framing_warnings": {"good": 0, "defect": 1}})
    assert not framing_warned({"framing_warnings": None}) and not framing_warned({})  # JSON null: an eval that did not check


def test_framing_line_of_kinds_unknown_or_none_in_the_language_s_numbers():
    from reports.i18n import translations
    from reports.numbers import STYLES
    from reports.validation import framing_line
    from tests.reports.test_validation import run_of

    def line(framing: dict, lang: str = "en") -> dict:
        return framing_line(run_of([0.0, 2.0], ["good", "crack"], framing_warnings=framing), translations(lang).gettext, STYLES[lang])

    assert line({"good": 0, "defect": 12000, "kinds": {"tilt": 12000}, "examples": []}, "es") == {
        "good": 0, "defect": 12000, "kinds": "12.000 tilt", "first": "—"}  # Spanish groups 5 digits up
    assert line({"good": 1, "defect": 0})["kinds"] == "—"  # a hand-made JSON without kinds: no list, not a TypeError
