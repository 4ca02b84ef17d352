"""Verification images: good and defective parts a station's model must judge right before it judges the line's.

The known-good / known-bad check of an error-proofing device: `inspector serve` runs it when it starts (and does
not start on a failure), before a reloaded model, threshold or config replaces the one in use (which goes on when
the new one fails), and `inspector config validate --here` runs it too. A threshold set too high to fail a known
defect, or a refit that fails a known good part, then never reaches the line.
"""

from __future__ import annotations

from typing import Any

from model.errors import InspectorError

FIELDS = ("model.verify_good", "model.verify_defect")


def verify(inspector: Any, good: list[str], defect: list[str]) -> dict[str, Any] | None:
    """Inspect the verification images with `inspector` (an api.Inspector, its thresholds applied): {"good": n,
    "defect": n} when every good one passes and every defective one fails, else InspectorError naming the first
    misjudged (and how many); None without images. An image that cannot be read is an error naming its field."""
    if not good and not defect:
        return None
    wrong = []
    for field, expected, paths in ((FIELDS[0], "PASS", good), (FIELDS[1], "FAIL", defect)):
        for path in paths:
            try:
                r = inspector.inspect(path)
            except InspectorError as exc:
                raise InspectorError(f"{field}: {exc}") from None
            if r.verdict != expected:
                wrong.append(f"{field} {path} {r.verdict} at score {r.score:.4g} (threshold {r.threshold:.4g})")
    if wrong:
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise InspectorError(f"model {inspector.engine.meta.model_id} misjudged {len(wrong)} of its {len(good) + len(defect)} "
                             f"verification images: {wrong[0]}{more}; fix the model or its threshold, or the images listed")
    return {"good": len(good), "defect": len(defect)}
