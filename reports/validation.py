"""The validation report of a model on labelled test images (`inspector eval MODEL DATA --report DIR`): what QA reads
and signs before a station's model goes into production.

It states what the stored threshold does on these images (each rate with its 95 % Wilson interval, so that 0 escapes
out of 50 reads as "up to 7 %", not as "none will escape"), per defect type, the threshold-free metrics, the score
distribution and ROC curve, every escaped defect and the worst false alarms as overlays, and what the numbers rest
on (model and data digests, whether the threshold was chosen on these very images, test images that are other
captures of training images).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reports import charts
from reports.charts import Gettext
from reports.i18n import translations
from reports.letterhead import Letterhead
from reports.names import safe_name
from reports.numbers import STYLES, Numbers, nearest
from reports.render import Page, emit, environment, in_language, out_folder, translate_value

GOOD = "good"
EXAMPLES = 12  # escaped defects and false alarms shown, each


TRANSLATED_NOTES = ("fpr_at_recall_99:", "tpr_at_fpr_1:")  # how eval's notes the report words itself begin
FRAMING_NOTE = "framing:"  # eval's note on framing_warnings, which the report words itself where it shows them


def framing_warned(report: dict[str, Any]) -> bool:
    """Whether eval found test images inspection would warn about for how the part lies (the report's framing line)."""
    framing = report.get("framing_warnings") or {}
    return bool(framing.get("good") or framing.get("defect"))


@dataclass
class ValidationRun:
    """One evaluation, as the report needs it. `report`: `inspector eval --json`'s object; per test image (in one
    order): `names` (its path under the data folder), `labels` ("good" or its defect type) and `scores`."""

    report: dict[str, Any]
    data: str
    data_sha256: str
    model_sha256: str
    names: list[str]
    labels: list[str]
    scores: np.ndarray
    threshold: float
    thumbnails: dict[int, str | None] = field(default_factory=dict)  # test image index -> overlay data URI
    # what the report names for traceability: the model file's path, runtime, kind ("checkpoint" or an export's, e.g.
    # "onnx-fp32"), weights_sha256 (its checkpoint's weights, whose first 12 digits are the model id), version,
    # framing (Framing.summary()), pixel_threshold, types_cv_accuracy, masks_sha256 (the test masks', where pixel metrics are)
    trace: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # eval's notes (images left out, blank masks), in its words

    def __post_init__(self) -> None:
        # the rates too few images resolve: the report says those itself, in its language (twice before, once in English)
        said = TRANSLATED_NOTES + ((FRAMING_NOTE,) if framing_warned(self.report) else ())
        self.notes = [n for n in self.notes if not n.startswith(said)]

    @property
    def defect(self) -> np.ndarray:
        return np.array([label != GOOD for label in self.labels])

    @property
    def failed(self) -> np.ndarray:
        return self.scores >= self.threshold

    def data_name(self, file: str) -> str:
        """A test image's path as the report names them, under the data folder (eval's JSON has it as it was given);
        as written where it is not there."""
        path = Path(file)
        at = path.parent.resolve() / path.name  # the image itself may be a link out of the folder
        data = Path(self.data).resolve()
        return str(at.relative_to(data)) if at.is_relative_to(data) else file

    def examples(self, n: int = EXAMPLES) -> tuple[list[int], list[int]]:
        """(escapes: defects that passed, lowest score first; false alarms: good images that failed, highest first),
        at most `n` each: the images whose overlays the report shows."""
        d, f = self.defect, self.failed
        escapes = sorted(np.flatnonzero(d & ~f), key=lambda i: self.scores[i])
        alarms = sorted(np.flatnonzero(~d & f), key=lambda i: -self.scores[i])
        return [int(i) for i in escapes[:n]], [int(i) for i in alarms[:n]]


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """95 % Wilson score interval of a proportion k / n (None for n = 0): unlike k / n ± 1.96 sd it stays inside
    [0, 1] and is not empty at k = 0, where it reads about 3.8 / (n + 3.8)."""
    if n <= 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at k = 0 and k = n the bound is 0 or 1 exactly, which rounding can miss by an ulp
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def rate(k: int, n: int) -> dict[str, Any]:
    """A count out of a total, in percent with its 95 % interval (None where n = 0)."""
    ci = wilson(k, n)
    return {"k": k, "n": n, "pct": 100 * k / n if n else None, "low": 100 * ci[0] if ci else None, "high": 100 * ci[1] if ci else None}


def roc_points(defect: np.ndarray, scores: np.ndarray) -> tuple[list[float], list[float]]:
    """The ROC curve's corners: (false-alarm rates, detection rates) from the strictest threshold to the loosest; tied
    scores move together, as one threshold passes or fails them all."""
    order = np.argsort(-scores, kind="stable")
    s, d = scores[order], defect[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # the end of each run of equal scores
    tp, fp = np.cumsum(d)[last], np.cumsum(~d)[last]
    n_def, n_good = max(int(d.sum()), 1), max(int((~d).sum()), 1)
    return [0.0, *(fp / n_good).tolist()], [0.0, *(tp / n_def).tolist()]


def per_type(run: ValidationRun) -> list[dict[str, Any]]:
    """Each defect type: how many of its images the threshold catches, and its AUROC against the good images."""
    auroc = run.report.get("per_type_auroc") or {}
    labels, failed = np.array(run.labels), run.failed
    return [{"type": t, "caught": rate(int(failed[labels == t].sum()), int((labels == t).sum())), "auroc": auroc.get(t)}
            for t in sorted(set(run.labels) - {GOOD})]


def validation_name(run: ValidationRun, lang: str = "en") -> str:
    """validation-<model id>-<data folder>-<key>[-<lang>]: the key digests the model file, the test set and the
    thresholds, so a report is rewritten only by the same evaluation in the same language, never by another model file,
    data set or threshold's, nor by its own in another language. The pixel threshold counts too: `threshold --pixel`
    keeps the weights and the image threshold, and the report with the old one's region figures was overwritten; so do
    the masks (trace's masks_sha256), which the test set's digest does not know."""
    model = (run.report.get("model") or {}).get("id") or "model"
    pixel, masks = run.trace.get("pixel_threshold"), run.trace.get("masks_sha256")
    key = hashlib.sha256((f"{run.model_sha256} {run.data_sha256} {run.threshold!r}" + ("" if pixel is None else f" {float(pixel)!r}")
                          + ("" if not masks else f" {masks}")).encode()).hexdigest()[:8]
    return in_language(f"validation-{safe_name(str(model))}-{safe_name(Path(run.data.rstrip('/')).name or 'data')}-{key}", lang)


def framing_line(run: ValidationRun, _: Gettext, num: Numbers) -> dict[str, Any] | None:
    """The framing line's figures (eval's framing_warnings): warned good and defect images, each kind with its count in
    the report's language (eval's order) and the first image named; None where there are none to show."""
    if not framing_warned(run.report):
        return None
    framing = run.report["framing_warnings"]
    words = {"size": _("%(n)s of a size unlike the training images'"), "locate": _("%(n)s whose part was found only weakly"),
             "edge": _("%(n)s whose part's region reaches past the frame's edge")}
    kinds = [words[k] % {"n": num.count(c)} if k in words else f"{num.count(c)} {k}" for k, c in (framing.get("kinds") or {}).items()]
    # a list joined as the language joins one (Chinese with its own comma)
    listed = functools.reduce(lambda a, b: _("%(first)s, %(next)s") % {"first": a, "next": b}, kinds) if kinds else "—"
    first = (framing.get("examples") or [{}])[0].get("file")
    return {"good": framing["good"], "defect": framing["defect"], "kinds": listed, "first": run.data_name(first) if first else "—"}


def _examples(run: ValidationRun, indices: Iterable[int]) -> list[dict[str, Any]]:
    return [{"name": run.names[i], "label": run.labels[i], "score": float(run.scores[i]), "uri": run.thumbnails.get(i)} for i in indices]


def validation_html(run: ValidationRun, page: Page) -> str:
    _ = translations(page.lang).gettext
    num = STYLES[page.lang]
    d, f = run.defect, run.failed
    c = {"good_pass": int((~d & ~f).sum()), "good_fail": int((~d & f).sum()), "defect_pass": int((d & ~f).sum()),
         "defect_fail": int((d & f).sum())}
    escapes, alarms = run.examples()
    fpr, tpr = roc_points(d, run.scores)
    point = (float(f[~d].mean()), float(f[d].mean())) if d.any() and (~d).any() else None
    svg = {"histogram": charts.histogram([(float(s), "FAIL" if bad else "PASS") for s, bad in zip(run.scores, d, strict=True)],
                                         [run.threshold], _, num, classes=(_("Good images"), _("Defect images")),
                                         title=_("Scores of good and defect images"), axis=(_("Images"), _("Images (log scale)"))),
           "roc": charts.roc(fpr, tpr, point, _, num)}
    return environment(page.lang).get_template("validation.html.j2").render(
        r=run.report, run=run, charts=svg,
        confusion=c, false_alarms=rate(c["good_fail"], int((~d).sum())), escape=rate(c["defect_pass"], int(d.sum())),
        types=[dict(row, label=translate_value(_, row["type"])) for row in per_type(run)],
        escapes=_examples(run, escapes), n_escapes=c["defect_pass"], alarms=_examples(run, alarms), n_alarms=c["good_fail"],
        framing=framing_line(run, _, num),
        threshold_near=nearest(run.threshold, run.scores.tolist()),  # an escape at 8.979477 read "8.979", as the threshold 8.97948
        **page.context())


def render_validation(run: ValidationRun, out_dir: str | Path, formats: Iterable[str] = ("html", "pdf"), lang: str = "en",
                      tz: str | None = "UTC", letterhead: Letterhead | None = None) -> dict[str, Path]:
    """Write validation_name's .html/.pdf; returns {format: path}."""
    page = Page.of(lang, formats, tz, letterhead)
    return emit(validation_name(run, page.lang), out_folder(out_dir), validation_html(run, page), page.formats)
