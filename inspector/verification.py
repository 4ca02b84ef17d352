"""Verification images: good and defective parts a station's model must judge right before it judges the line's.

The known-good / known-bad check of an error-proofing device: `inspector serve` runs it when it starts (and does
not start on a failure), before a reloaded model, threshold or config replaces the one in use (which goes on when
the new one fails), and `inspector config validate --here` runs it too. A threshold set too high to fail a known
defect, or a refit that fails a known good part, then never reaches the line.
"""

from __future__ import annotations

import logging
from typing import Any

from model.errors import InspectorError

log = logging.getLogger(__name__)
FIELDS = ("model.verify_good", "model.verify_defect")


def verify(inspector: Any, good: list[str], defect: list[str]) -> dict[str, Any] | None:
    """Inspect the verification images with `inspector` (an api.Inspector, its thresholds applied): {"good": n,
    "defect": n} when every good one passes and every defective one fails, else InspectorError naming the first
    misjudged (and how many); None without images. An image that cannot be read is an error naming its field.

    A misjudged image the inspection warns about (unlike the training images: its size, light or focus) is named with
    the warning, the likely cause; a defect image that FAILs with one is logged: it may fail for that alone (a frame
    too dark to show the defect fails as any dark frame does), and so prove little about the model."""
    if not good and not defect:
        return None
    wrong = []
    for field, expected, paths in ((FIELDS[0], "PASS", good), (FIELDS[1], "FAIL", defect)):
        for path in paths:
            try:
                r = inspector.inspect(path)
            except InspectorError as exc:
                raise InspectorError(f"{field}: {exc}") from None
            warned = f'; it warns: "{r.warnings[0]}"' if r.warnings else ""
            if r.verdict != expected:
                wrong.append(f"{field} {path} {r.verdict} at score {r.score:.4g} (threshold {r.threshold:.4g}{warned})")
            elif warned and expected == "FAIL":
                log.warning("%s %s FAILs as it should%s: any such frame fails, so it may fail for that, not for its defect, "
                            "and prove little about the model; use an image of a defective part as this station's camera "
                            "takes it", field, path, warned)
    if wrong:
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise InspectorError(f"model {inspector.engine.meta.model_id} misjudged {len(wrong)} of its {len(good) + len(defect)} "
                             f"verification images: {wrong[0]}{more}; fix the model or its threshold, or the images listed")
    return {"good": len(good), "defect": len(defect)}
