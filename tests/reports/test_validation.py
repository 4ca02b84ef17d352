"""The validation report (`inspector eval --report`): its interval and ROC arithmetic, which images it shows, and the
rendered HTML and PDF."""

from __future__ import annotations

import re

import numpy as np
import pytest

from reports.images import array_uri
from reports.letterhead import letterhead
from reports.render import Page
from reports.validation import ValidationRun, rate, render_validation, roc_points, validation_html, validation_name, wilson

from .conftest import XSS, need
from .test_render import refs


def test_wilson_interval_against_published_values():
    # Newcombe (1998), table I: 0/10, 1/29 and 81/263 with their 95 % Wilson intervals
    for k, n, low, high in ((0, 10, 0.0, 0.2775), (1, 29, 0.0061, 0.1718), (81, 263, 0.2553, 0.3662)):
        lo, hi = wilson(k, n)
        assert (round(lo, 4), round(hi, 4)) == (low, high), (k, n)
    lo, hi = wilson(50, 50)
    assert hi == 1.0 and 0.92 < lo < 0.93
    assert wilson(0, 0) is None and rate(0, 0) == {"k": 0, "n": 0, "pct": None, "low": None, "high": None}
    assert rate(1, 4)["pct"] == 25.0


def test_roc_points_move_tied_scores_together_and_their_area_is_the_auroc():
    fpr, tpr = roc_points(np.array([True, True, False, False]), np.array([3.0, 2.0, 2.0, 1.0]))
    assert (fpr, tpr) == ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0])  # the tie at 2 is one step, not two
    from model.metrics import roc_auc

    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.4
    s = np.round(rng.normal(y * 1.2, 1.0), 1)  # rounded: many ties
    fpr, tpr = roc_points(y, s)
    assert fpr[-1] == tpr[-1] == 1.0
    area = float(np.sum(np.diff(fpr) * (np.array(tpr[1:]) + np.array(tpr[:-1])) / 2))
    assert area == pytest.approx(roc_auc(y, s), abs=1e-12)


def run_of(scores: list[float], labels: list[str], threshold: float = 1.0, **report) -> ValidationRun:
    n_good = labels.count("good")
    base = {"n_good": n_good, "n_defect": len(labels) - n_good, "image_auroc": 0.9, "image_ap": 0.8, "f1_max": 0.7,
            "fpr_at_recall_99": 0.5, "tpr_at_fpr_1": 0.25, "pixel_auroc": None, "aupro": None, "ms_per_image": 12.5,
            "fit_seconds": None, "per_type_auroc": {t: 0.75 for t in set(labels) - {"good"}},
            "at_threshold": {"threshold": threshold, "calibrated_on_these_images": False},
            "model": {"id": "abc123", "backbone": "efficientnet-lite0", "runtime": "onnx-cpu", "input_size": [64, 64]}}
    return ValidationRun(report={**base, **report}, data="data/line1", data_sha256="d" * 64, model_sha256="m" * 64,
                         names=[f"test/{label}/{i:03d}.png" for i, label in enumerate(labels)], labels=labels,
                         scores=np.array(scores, dtype=float), threshold=threshold)


def test_examples_are_every_escape_lowest_first_and_the_worst_false_alarms():
    run = run_of([0.2, 1.5, 0.9, 0.1, 3.0, 2.0, 1.0, 0.5], ["crack", "crack", "pit", "pit", "good", "good", "good", "good"])
    escapes, alarms = run.examples()
    assert escapes == [3, 0, 2] and alarms == [4, 5, 6]  # a score at the threshold fails
    assert run.examples(n=1) == ([3], [4])


def section(html: str, name: str) -> str:
    return re.search(rf'<section[^>]*id="{name}".*?</section>', html, re.S).group(0)


def test_html_counts_rates_types_and_thumbnails_agree_with_the_scores():
    rgb = np.zeros((32, 48, 3), np.uint8)
    labels = ["good"] * 20 + ["crack"] * 6 + ["pit"] * 4
    scores = [0.0] * 18 + [1.5, 2.5] + [2.0] * 5 + [0.5] + [3.0] * 3 + [0.2]
    run = run_of(scores, labels)
    run.names[25] = f"test/crack/{XSS}.png"
    run.thumbnails = {25: array_uri(rgb)}
    html = validation_html(run, Page.of("en", ("html",), "UTC", None))
    r = refs(html)
    assert "script" not in r.tags and XSS not in html and "&lt;script&gt;" in html
    decision = section(html, "decision")
    assert '<div class="v" id="caught">8 / 10</div>' in decision and "20.0%" in decision and "10.0%" in decision
    lo, hi = wilson(2, 20)
    assert f"10.0% <span class=\"muted\">({100 * lo:.1f}% – {100 * hi:.1f}%)" in decision
    types = section(html, "types")
    assert re.search(r"crack</td><td class=\"num\">6</td><td class=\"num\">5</td>", types)
    assert re.search(r"pit</td><td class=\"num\">4</td><td class=\"num\">3</td>", types)
    escapes, alarms = section(html, "escapes"), section(html, "false-alarms")
    assert escapes.count('class="thumb"') == 2 and alarms.count('class="thumb"') == 2
    assert escapes.count("data:image/jpeg;base64,") == 1 and "Image not available" in escapes  # the other has no thumbnail
    assert escapes.index("pit") < escapes.index("crack")  # lowest score first
    assert html.count("<svg") == 2 and "Approved for production" in html
    assert validation_name(run).startswith("validation-abc123-line1-")


def test_each_model_file_test_set_and_threshold_gets_its_own_file():
    labels = ["good", "crack"]
    name = validation_name(run_of([0.0, 2.0], labels))
    assert validation_name(run_of([0.5, 3.0], labels)) == name  # the same evaluation rewrites its own report
    others = [run_of([0.0, 2.0], labels, threshold=1.5), run_of([0.0, 2.0], labels), run_of([0.0, 2.0], labels)]
    others[1].model_sha256, others[2].data_sha256 = "e" * 64, "f" * 64  # an export of the model; another test set
    assert len({name, *(validation_name(o) for o in others)}) == 4
    assert validation_name(run_of([0.0, 2.0], labels), "zh") == f"{name}-zh"  # not over the English one QA may have signed


def test_a_rate_reads_none_or_all_only_when_it_is():
    labels = ["good"] * 10 + ["crack"] * 2500
    html = validation_html(run_of([0.0] * 10 + [0.5] + [2.0] * 2499, labels), Page.of("en", ("html",), "UTC", None))
    decision, types = section(html, "decision"), section(html, "types")
    assert 'id="escape-rate">0.1%<' in decision and '<div class="kpi fail"><div class="v" id="escape-rate">' in decision
    assert re.search(r"crack</td><td class=\"num\">2,500</td><td class=\"num\">2,499</td><td>99\.9%", types)
    none_failed = section(validation_html(run_of([0.0, 2.0], ["good", "crack"]), Page.of("en", ("html",), "UTC", None)), "decision")
    assert 'id="escape-rate">0.0%<' in none_failed and '<div class="kpi"><div class="v" id="escape-rate">' in none_failed


def test_the_threshold_says_what_it_was_chosen_for_and_on_which_of_these_images():
    en = Page.of("en", ("html",), "UTC", None)

    def decision(**at):
        run = run_of([0.0, 2.0, 2.0, 0.5], ["good", "good", "crack", "crack"],
                     at_threshold={"threshold": 1.0, "calibrated_on_these_images": False, **at})
        return " ".join(section(validation_html(run, en), "decision").split())

    assert "chosen for at most 0.5% escapes" in decision(policy={"kind": "escape", "target": 0.005})
    assert "chosen for at most 1.0% false alarms" in decision(policy={"kind": "far", "target": 0.01})
    assert "set by hand" in decision(policy=None)
    assert 'id="policy"' not in decision()  # a model that does not record it
    partly = decision(policy={"kind": "escape", "target": 0.01}, test_images_calibrated_on=3)
    assert re.search(r'id="calibrated-partly">3 of these 4 test images were among those it was chosen on', partly)
    assert "calibrated-partly" not in decision(test_images_calibrated_on=0)


def test_notes_are_in_the_report_language_and_traceability_names_the_file_that_was_judged():
    run = run_of([0.0, 2.0, 2.0], ["good", "crack", "crack"], defects_without_masks=1, type_accuracy=1.0, type_macro_f1=1.0,
                 types_fitted_on_these_images=2, notes=["fpr_at_recall_99: English from eval --json"])
    run.trace = {"path": "/models/line1/model.onnx", "kind": "onnx-fp32", "weights_sha256": "w" * 64, "version": "9.9",
                 "framing": {"roi": [4, 8, 32, 32], "locate": 6, "ignored": 0.125}, "pixel_threshold": 0.75,
                 "types_cv_accuracy": 0.72}
    run.notes = ["1 broken link left out"]
    zh = validation_html(run, Page.of("zh", ("html",), "UTC", None))
    assert "fpr_at_recall_99" not in zh and "需要 100 张" in zh and "1 broken link left out" in zh
    assert "2 张缺陷图像中有 1 张没有掩码" in zh and "72.0%" in zh
    trace = section(validation_html(run, Page.of("en", ("html",), "UTC", None)), "traceability")
    assert "/models/line1/model.onnx" in trace and "onnx-fp32" in trace and "inspector 9.9" in trace
    assert re.search(r'id="weights-sha256">w{64}<', trace) and re.search(r'id="file-sha256">m{64}<', trace)
    assert re.search(r'id="pixel-threshold">0\.75<', trace)
    assert "region 4,8,32,32; follows the part within 6 px; 12.5% of it ignored" in trace


def test_a_typed_model_whose_test_defects_are_all_of_other_types_has_a_report():
    """eval --report of such a test set (type_accuracy None) ended in a TypeError, exit 70, and wrote no report."""
    run = run_of([0.0, 2.0, 2.0], ["good", "blowholes", "uneven"], type_accuracy=None, type_macro_f1=None,
                 types_not_known={"blowholes": 1, "uneven": 1})
    html = validation_html(run, Page.of("en", ("html",), "UTC", None))
    assert 'id="type-naming"' not in html and "blowholes" in html


def test_a_threshold_chosen_on_these_images_says_so_with_the_held_out_rates():
    held = {"policy": {"kind": "escape", "target": 0.01}, "folds": 5, "false_alarm_rate": 0.391, "escape_rate": 0.0157}
    run = run_of([0.0, 2.0, 2.0, 0.5], ["good", "good", "crack", "crack"],
                 at_threshold={"threshold": 1.0, "calibrated_on_these_images": True, "held_out": held})
    html = validation_html(run, Page.of("es", ("html",), "UTC", None))
    note = re.search(r'id="calibrated-here">(.*?)</p>', html, re.S).group(1)
    assert "4 de 5" in note and "39,1" in note and "1,6" in note  # Spanish decimals
    assert 'id="calibrated-here"' not in validation_html(run_of([0.0, 2.0], ["good", "crack"]), Page.of("en", ("html",), "UTC", None))


def test_pdf_in_chinese_with_letterhead(tmp_path):
    pytest.importorskip("weasyprint", reason="PDF reports need the pdf extra (weasyprint)")
    import subprocess

    from reports.i18n import cjk_font

    run = run_of([0.0, 0.3, 1.2, 2.0, 0.4], ["good", "good", "good", "crack", "crack"])
    head = letterhead("ACME Motors, Plant 2", "QF-8.2-11 rev. C")
    paths = render_validation(run, tmp_path, formats=("html", "pdf"), lang="zh", letterhead=head)
    assert sorted(paths) == ["html", "pdf"] and paths["pdf"].name == validation_name(run, "zh") + ".pdf"
    text = subprocess.run([need("pdftotext"), "-layout", str(paths["pdf"]), "-"], capture_output=True, text=True, check=True).stdout
    assert "QF-8.2-11 rev. C" in text and "m" * 64 in text.replace("\n", "").replace(" ", "")
    if cjk_font():
        assert "模型验证报告" in text and "批准投产" in text


def test_new_parts_and_twins_notes_appear_only_when_eval_measured_them():
    plain = validation_html(run_of([0.0, 2.0], ["good", "crack"]), Page.of("en", ("html",), "UTC", None))
    assert 'id="new-parts"' not in plain and 'id="twins"' not in plain and 'id="image-quality"' not in plain
    run = run_of([0.0, 2.0], ["good", "crack"], new_parts={"folds": 5, "image_auroc": 0.8667},
                 train_overlap={"good_twins": 176, "defect_twins": 2, "image_auroc_without_twins": 0.9488})
    html = validation_html(run, Page.of("en", ("html",), "UTC", None))
    assert re.search(r'id="new-parts">[^<]*\(5 folds\), image AUROC was 0\.8667', html)
    assert re.search(r'id="twins">176 good and 2 defect[^<]*AUROC is 0\.9488', html)
    none = run_of([0.0, 2.0], ["good", "crack"], image_quality={"good": 0, "defect": 0, "causes": {}, "examples": []})
    assert 'id="image-quality"' not in validation_html(none, Page.of("en", ("html",), "UTC", None))
    warned = run_of([0.0, 2.0], ["good", "crack"], image_quality={"good": 3, "defect": 1, "causes": {"dark": 4}, "examples": []})
    assert re.search(r'id="image-quality">3 good and 1 defect test images are darker', validation_html(warned, Page.of("en", ("html",), "UTC", None)))
    assert "张良品和" in validation_html(warned, Page.of("zh", ("html",), "UTC", None))
    skipped = run_of([0.0, 2.0], ["good", "crack"], new_parts={"skipped": "fewer parts than folds"})
    assert 'id="new-parts"' not in validation_html(skipped, Page.of("en", ("html",), "UTC", None))


def test_pixel_figures_chosen_on_these_masks_say_so_with_the_held_out_ones():
    """eval printed "(chosen on these masks)" and the held-out figures; the report printed the in-sample precision alone
    (0.583 where held out it was 0.058)."""
    px = {"threshold": 10.03, "precision": 0.5833, "recall": 0.2409, "f1": 0.3409, "calibrated_on_these_images": True,
          "held_out": {"folds": 4, "precision": 0.0576, "recall": 0.3097, "f1": 0.0972}}
    en = Page.of("en", ("html",), "UTC", None)
    metrics = " ".join(section(validation_html(run_of([0.0, 2.0], ["good", "crack"], at_pixel_threshold=px), en), "metrics").split())
    assert "precision 0.583, recall 0.241, F1 0.341 <strong>(the pixel threshold was chosen on these masks, so these figures flatter it)" in metrics
    assert re.search(r'id="pixel-held-out">precision 0\.058, recall 0\.310, F1 0\.097 \(chosen again on 3 of 4 folds', metrics)
    elsewhere = section(validation_html(run_of([0.0, 2.0], ["good", "crack"], at_pixel_threshold={**px, "calibrated_on_these_images": False}),
                                        en), "metrics")
    assert "precision 0.583" in elsewhere and "flatter" not in elsewhere and "pixel-held-out" not in elsewhere
    zh = validation_html(run_of([0.0, 2.0], ["good", "crack"], at_pixel_threshold=px), Page.of("zh", ("html",), "UTC", None))
    assert "像素阈值是在这些掩码上选定的" in zh and "精确率 0.058" in zh


def test_a_threshold_set_by_hand_is_never_said_to_be_chosen_on_these_images():
    """"set by hand … not chosen for a target rate" stood over "8 of these 8 test images were among those it was chosen
    on": the count was of the fit's calibration images, which a threshold set by hand does not answer to."""
    from types import SimpleNamespace

    from inspector.commands.evaluate import threshold_origin

    run = run_of([0.0, 2.0], ["good", "crack"], at_threshold={"threshold": 1.0, "calibrated_on_these_images": False, "policy": None,
                                                             "test_images_calibrated_on": 2})
    decision = section(validation_html(run, Page.of("en", ("html",), "UTC", None)), "decision")
    assert "set by hand" in decision and "calibrated-partly" not in decision
    data = SimpleNamespace(test_digests=["a" * 64, "b" * 64])
    calibration = {"policy": {"kind": "escape", "target": 0.01}, "test_images": ["a" * 16, "b" * 16]}
    assert threshold_origin(calibration, data) == {"policy": calibration["policy"], "test_images_calibrated_on": 2}
    assert threshold_origin({**calibration, "policy": None}, data) == {"policy": None}
    assert threshold_origin({"test_images": ["a" * 16]}, data) == {"test_images_calibrated_on": 1}  # no policy recorded: counted


def test_an_escape_just_below_the_threshold_never_reads_equal_to_it():
    """Threshold 8.97948, an escaped defect at 8.979477882: "8.979" both, in the KPI, the chart and the thumbnail."""
    run = run_of([0.0, 8.979477882, 9.5], ["good", "blob", "blob"], threshold=8.97948)
    html = validation_html(run, Page.of("en", ("html",), "UTC", None))
    assert '<div class="v" id="threshold">8.97948</div>' in html
    assert "Threshold 8.97948</text>" in section(html, "scores")
    assert "<strong>blob</strong> 8.979478</div>" in section(html, "escapes")


def test_a_small_target_rate_keeps_its_digits():
    """--far 0.0004 read "chosen for at most 0.0% false alarms"; a held-out rate of 1 in 2,500 read 0.0 % too."""
    held = {"policy": {"kind": "far", "target": 0.0004}, "folds": 5, "false_alarm_rate": 0.0004, "escape_rate": 0.0}
    run = run_of([0.0, 2.0], ["good", "crack"], at_threshold={"threshold": 1.0, "calibrated_on_these_images": True, "held_out": held,
                                                            "policy": held["policy"]})
    decision = section(validation_html(run, Page.of("es", ("html",), "UTC", None)), "decision")
    assert "como máximo un 0,04\u00a0% de falsas alarmas" in decision
    assert re.search(r"falsas alarmas 0,1\u00a0% y escapes 0,0\u00a0%", decision)  # 1 in 2,500, and none
    assert "at most 1.0% escapes" in validation_html(run_of([0.0, 2.0], ["good", "crack"], at_threshold={
        "threshold": 1.0, "calibrated_on_these_images": False, "policy": {"kind": "escape", "target": 0.01}}), Page.of("en", ("html",), "UTC", None))


def test_the_data_sets_notes_are_marked_as_evals_english_words_in_other_languages():
    """"1 link(s) in data2/test/good lead nowhere…" stood in a Chinese report as if it were the report's own text."""
    run = run_of([0.0, 2.0], ["good", "crack"])
    run.notes = ["1 link(s) in data2/test/good lead nowhere and were left out"]
    assert '<p class="note">1 link(s) in data2' in validation_html(run, Page.of("en", ("html",), "UTC", None))
    assert '<p class="note">inspector eval 的英文原文: 1 link(s) in data2' in validation_html(run, Page.of("zh", ("html",), "UTC", None))


def test_notes_of_one_image_are_in_the_singular():
    """'1 defect images cannot resolve ...' and '1 of the 1 defect images have no mask: they count' in a report QA signs."""
    import html

    run = run_of([0.0, 2.0], ["good", "crack"], defects_without_masks=1)
    en = html.unescape(validation_html(run, Page.of("en", ("html",), "UTC", None)))
    assert "1 defect image cannot resolve 99% of defects caught" in en and "1 good image cannot resolve a 1% false-alarm" in en
    assert "1 of the 1 defect images has no mask: it counts for the image metrics" in en
    es = html.unescape(validation_html(run, Page.of("es", ("html",), "UTC", None)))
    assert "1 imagen con defecto no basta" in es and "1 de las 1 imágenes con defecto no tiene máscara: cuenta" in es
    run = run_of([0.0, 0.5, 2.0, 3.0], ["good", "good", "crack", "crack"], defects_without_masks=2)
    en = html.unescape(validation_html(run, Page.of("en", ("html",), "UTC", None)))
    assert "2 defect images cannot resolve" in en and "2 of the 2 defect images have no mask: they count" in en


def test_redrawn_masks_get_their_own_validation_report():
    """The test set's digest knows images and labels alone: a report made after the masks were redrawn (other region
    figures) overwrote the one made before, perhaps signed. The masks' digest keys the name and is shown."""
    before, after, none = run_of([0.0, 2.0], ["good", "crack"]), run_of([0.0, 2.0], ["good", "crack"]), run_of([0.0, 2.0], ["good", "crack"])
    before.trace, after.trace = {"masks_sha256": "a" * 64}, {"masks_sha256": "b" * 64}
    assert len({validation_name(before), validation_name(after), validation_name(none)}) == 3
    page = validation_html(before, Page.of("es", ("html",), "UTC", None))
    assert re.search(r'Suma de verificación de las máscaras[^<]*</th><td class="mono" id="masks-sha256">a{64}</td>', page)
    assert 'id="masks-sha256"' not in validation_html(none, Page.of("en", ("html",), "UTC", None))


def test_a_gallerys_heading_and_opening_line_never_end_a_page_without_its_pictures(tmp_path):
    """"False alarms" and "The 6 good images that failed" ended page 2, their pictures on page 3 (the PDF of magnetic
    tiles did so); and a picture's file name was cut anywhere, "exp6_num_972.jp g", not at its / or ."""
    pytest.importorskip("weasyprint", reason="PDF reports need the pdf extra (weasyprint)")
    import subprocess

    pdftotext = need("pdftotext")
    for k in range(1, 7):  # more defect types push the galleries down the page: 1-6 put the false alarms' at its end
        types = [f"type{i:02d}" for i in range(k)]
        labels = ["good"] * 30 + [t for t in types for _ in range(2)]
        run = run_of([0.0] * 24 + [2.0] * 6 + [0.5, 2.0] * k, labels)
        run.names = [f"test/{label}/exp6_num_{972 + 7 * i}.jpg" for i, label in enumerate(labels)]  # as magnetic_tile names them
        pdf = render_validation(run, tmp_path / str(k), formats=("pdf",), lang="en")["pdf"]
        text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        for page in text.split("\f"):
            body = [line.strip() for line in page.splitlines() if line.strip()][:-1]  # less its footer
            assert not body or not (body[-1] in ("Escaped defects", "False alarms") or "images that" in body[-1]), (k, body[-3:])
        shown = [run.names[i].rsplit("/", 1)[1].removesuffix(".jpg") for group in run.examples() for i in group]
        captions = subprocess.run([pdftotext, str(pdf), "-"], capture_output=True, text=True, check=True).stdout  # in reading order
        assert shown and all(re.search(rf"{stem}\s*\.jpg", captions) for stem in shown), k  # broken at its "." at most


def test_identifiers_break_at_their_separators_not_within_a_word(tmp_path):
    """The shift report's model table cut "onnxruntime:CPUExecutio nProvider:onnx" (the demo's runtime) in its PDF, and in
    Chinese "efficientn et-lite0" too; the inspection report "CPUExecutionProvider:o nnx"."""
    pytest.importorskip("weasyprint", reason="PDF reports need the pdf extra (weasyprint)")
    import subprocess

    import reports
    from reports.render import breakable
    from reports.sample import make_records

    assert breakable("a:b/c<d>.png") == "a:<wbr>b/<wbr>c&lt;d&gt;<wbr>.png" and breakable("plain") == "plain"
    records = make_records(3, root=tmp_path, image_size=32, seed=1)
    for r in records:  # the demo's model
        r["model"].update(id="dafa07ce1e94", backbone="efficientnet-lite0", runtime="onnxruntime:CPUExecutionProvider:onnx")
    for lang in ("en", "zh"):
        shift = reports.render_shift(records, {"worst_n": 0}, tmp_path / lang, formats=("pdf",), lang=lang)["pdf"]
        one = reports.render_inspection(records[0], tmp_path / lang, formats=("pdf",), lang=lang, store_root=tmp_path)["pdf"]
        for pdf in (shift, one):  # the inspection report's traceability cut it too: "CPUExecutionProvider:o nnx"
            text = subprocess.run([need("pdftotext"), str(pdf), "-"], capture_output=True, text=True, check=True).stdout
            assert "CPUExecutionProvider:" in text and "onnx" in text.split("CPUExecutionProvider:", 1)[1][:8], (lang, pdf.name)
            assert "efficientnet" in text, (lang, pdf.name)


def test_a_type_named_in_latin1_is_written_with_its_byte_escaped(tmp_path):
    """eval --report of test/Ölfleck from a Latin-1 file server (its name's bytes not UTF-8, lone surrogates in Python):
    the report's writing ended in a traceback (UnicodeEncodeError), after the whole evaluation."""
    import os

    name = os.fsdecode(b"\xd6lfleck")
    run = run_of([0.0, 0.1, 2.0, 3.0], ["good", "good", name, name])
    paths = render_validation(run, tmp_path, formats=("html",))
    html = paths["html"].read_text(encoding="utf-8")
    assert "<td>\\xd6lfleck</td>" in html


def test_the_framings_turn_is_written_as_the_reports_language_writes_numbers():
    """A Spanish validation report of a model fitted with --turn 7.5 read 'girada hasta 7.5°' beside '12,5 % de ella
    ignorado', and --turn 10 read '10.0°' in every language."""
    run = run_of([0.0, 2.0], ["good", "crack"])
    run.trace = {"framing": {"roi": [4, 8, 32, 32], "locate": 6, "turn": 7.5, "ignored": 0.125}}

    def framing(lang: str) -> str:
        return re.search(r'id="framing">(.*?)</td>', validation_html(run, Page.of(lang, ("html",), "UTC", None))).group(1)

    assert "girada hasta 7,5° en cada sentido; 12,5\u00a0% de ella ignorado" in framing("es")
    assert "turned up to 7.5° either way" in framing("en")
    run.trace["framing"]["turn"] = 10.0
    assert "turned up to 10° either way" in framing("en") and "双向旋转最多 10°" in framing("zh") and "hasta 10° en" in framing("es")
