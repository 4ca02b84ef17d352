"""QA reviews of stored results: what the part really was, beside what the machine said (`inspector review`, and
the `review` command on `<prefix>/command`)."""

from __future__ import annotations

from typing import Any

from inspector.result import utc_now
from model.errors import InspectorError, not_utf8
from model.label_names import RESERVED, type_words

OUTCOMES = {("FAIL", "good"): "false_alarm", ("PASS", "defect"): "escape", ("FAIL", "defect"): "confirmed", ("PASS", "good"): "confirmed"}
MAX_TEXT = 500  # characters of a reviewer's name or note kept in a record


def one_line(value: str | None, what: str) -> str | None:
    """One line of printable text (newlines and tabs read as spaces, control characters dropped); None stays None."""
    if value is None:
        return None
    if said := not_utf8(what, value):  # bytes of another encoding, which the filter below dropped unsaid
        raise InspectorError(said)
    text = " ".join("".join(c for c in value if c.isprintable() or c.isspace()).split())
    if not text:
        raise InspectorError(f"{what} is empty; give a value or leave {what} out")
    if len(text) > MAX_TEXT:
        raise InspectorError(f"{what} is {len(text)} characters long; keep it to {MAX_TEXT}")
    return text


def ids_of_serials(store: Any, serials: list[str]) -> list[str]:
    """Each serial's last inspection (a part inspected again is reviewed as last seen); all found, or an error naming those not."""
    found = {s: store.latest_of_serial(s) for s in dict.fromkeys(serials)}
    if missing := [s for s, i in found.items() if i is None]:
        named = ", ".join(map(repr, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InspectorError(f"serial {named}: no inspection of it in store {store.root}; check the serial (nothing was written)")
    return list(found.values())


def review_parts(store: Any, ids: list[str], truth: str, defect_type: str | None, by: str | None, note: str | None,
                 names: tuple[str, str, str, str, str] = ("--type", "--by", "--note", "--truth", "--serial"),
                 done: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Add one review to each stored record of `ids` (each checked before any is written); returns the reviews, each
    with its `inspection_id` and the review it `replaces` (None for the part's first). `names`: what the caller calls
    the type, reviewer, note, truth and serial, for its error messages.
    `done`: a list the reviews are added to as each is written, so that a caller whose write fails (SQLite's error
    is raised as it is) can say which were kept."""
    if defect_type is not None and truth != "defect":
        raise InspectorError(f"{names[0]} names a defect's type: give it with {names[3]} defect, or leave it out")
    defect_type, by, note = one_line(defect_type, names[0]), one_line(by, names[1]), one_line(note, names[2])
    # read as fit reads a type folder: `unknown_` and `_` were kept, then skipped by --export or exported as a folder fit refuses
    if defect_type is not None and type_words(defect_type) in (*RESERVED, ""):
        raise InspectorError(f"{names[0]} {defect_type}: not a defect type; name the defect (e.g. crack), or leave it out")
    records = {i: store.get(i) for i in dict.fromkeys(ids)}
    if missing := [i for i, r in records.items() if r is None]:
        named = ", ".join(map(repr, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        if serial := next((i for i in missing if store.latest_of_serial(i)), None):  # a serial given as an id
            raise InspectorError(f"inspection {named}: not in store {store.root}, but {serial!r} is a part's serial; give {names[4]} to "
                                 "review its last inspection (nothing was written)")
        for ident in missing:  # an id the station knows, but of no result: why, rather than "not in store"
            if store.is_pending(ident):
                raise InspectorError(f"inspection {ident!r}: accepted, but its result is not stored yet (it is being inspected, or the store "
                                     "refused its result: see the station's /health); review it once stored (nothing was written)")
            if (why := store.set_aside_of(ident)) is not None:
                raise InspectorError(f"inspection {ident!r}: never inspected, so there is no verdict to review (its input was set aside: "
                                     f"{' '.join(str(why.get('reason')).split())[:300]}; kept as {why.get('file')} in store {store.root}) "
                                     "(nothing was written)")
        raise InspectorError(f"inspection {named}: not in store {store.root}; give the inspection_id of a stored result (nothing was written)")
    done = [] if done is None else done
    for ident, record in records.items():
        verdict = str(record.get("verdict", "")).upper()
        review = {"truth": truth, "type": defect_type, "by": by, "note": note, "at": utc_now(), "verdict": verdict,
                  "outcome": OUTCOMES.get((verdict, truth), f"reviewed_{truth}")}
        written = store.add_review(ident, review)
        if written is None:  # deleted since it was read (retention): said "reviewed", written nowhere
            kept = f"the first {len(done)} were written" if done else "nothing was written"
            raise InspectorError(f"inspection {ident!r}: deleted from store {store.root} while it was reviewed (retention: its age or "
                                 f"store.retention.max_rows); its review was not written ({kept})")
        # the review it now stands over: another QA's "defect (crack)" was overruled without a word, and the shift report
        # counted the part as the last review said
        history = written.get("reviews") if isinstance(written.get("reviews"), list) else []
        earlier = history[-2] if len(history) > 1 and isinstance(history[-2], dict) else None
        done.append({"inspection_id": ident, **review, "replaces": earlier})
    return done


def replaced(review: dict[str, Any]) -> str:
    """' (replaces A. Li's review of <time>: defect (crack))', or '' for a part's first review."""
    earlier = review.get("replaces")
    if not isinstance(earlier, dict):
        return ""
    who = f"{earlier['by']}'s review" if earlier.get("by") else "the review"
    what = f"{earlier.get('truth')}" + (f" ({earlier['type']})" if earlier.get("type") else "")
    return f" (replaces {who}{' of ' + str(earlier['at']) if earlier.get('at') else ''}: {what})"
