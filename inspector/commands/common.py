"""Helpers shared by subcommands: progress bars, JSON output, argument types."""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model.errors import InspectorError

DEVICE_HELP = "where the model runs: cpu or cuda[:N] (checkpoints, ONNX), tensorrt[:N] (ONNX via TensorRT); engines run on cuda (default cpu)"


LOG_EVERY_S = 30.0


class LogLines:
    """Progress for a log (stderr not a terminal): a line once `every` seconds have passed without one (`last` holds
    when the last came, shared by one command's steps), and a step's end if it took that long or a line of it left
    the count short (a log ending '15/22' reads as a stall), so a fit in a job's log is never minutes of silence and a
    short run prints nothing."""

    def __init__(self, desc: str, total: int, every: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic,
                 last: list[float] | None = None) -> None:
        self.desc, self.total, self.n, self.every, self.clock = desc, total, 0, every, clock
        self.start = clock()
        self.last = last if last is not None else [self.start]
        self.said: int | None = None  # the count its last line showed

    def _say(self, text: str, now: float) -> None:
        print(f"{self.desc}: {text}", file=sys.stderr, flush=True)
        self.last[0], self.said = now, self.n

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last[0] >= self.every:
            self._say(f"{self.n}/{self.total} ({now - self.start:.0f} s)", now)

    def close(self) -> None:
        now = self.clock()
        if now - self.start >= self.every or (self.said is not None and self.said != self.n):
            self._say(f"done, {self.n}/{self.total} in {now - self.start:.0f} s", now)


def add_letterhead_args(p: argparse._ActionsContainer, when: str = "") -> None:
    """--organisation, --document and --logo: the letterhead of a command's reports (`when`: a condition its help names)."""
    p.add_argument("--organisation", metavar="TEXT", help=f"{when}company and site at the head of the reports")
    p.add_argument("--document", metavar="TEXT", help=f"{when}the controlled form's number and revision, e.g. 'QF-7.5-03 rev. B'")
    p.add_argument("--logo", metavar="FILE", help=f"{when}a PNG, JPEG or SVG logo (under 2 MB) at the head of the reports")


def tqdm_bars(enabled: bool = True):
    """A progress-bar factory for model code: bars on a terminal's stderr, `LogLines` on any other, none when disabled."""
    from tqdm import tqdm

    last = [time.monotonic()]

    def make(desc: str, total: int):
        if enabled and not sys.stderr.isatty():  # no bar debris in logs or captured output
            return LogLines(desc, total, LOG_EVERY_S, last=last)
        return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, disable=not enabled, dynamic_ncols=True)

    return make


def print_json(obj: Any) -> None:
    """One JSON object on stdout that any JSON reader takes. A file or folder name that is not UTF-8 (a zip from a
    Windows PC in GBK, a share mounted with another charset) comes through Python as lone surrogates: printed as they
    are, they crashed a UTF-8 stdout after the whole command (a traceback) or, under the C locale, wrote bytes no
    JSON reader decodes. Such an object is written with \\u escapes instead (json.loads gives back the very name).
    A NaN or infinite number is written as null, as the result record writes a NaN score: Python wrote `NaN` and
    `Infinity`, which are not JSON, and a strict reader (a PLC's, jq's, JavaScript's JSON.parse) refused the document."""
    try:
        text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False)
    except ValueError:
        obj = _finite(obj)
        text = json.dumps(obj, indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
        text.encode(getattr(sys.stdout, "encoding", None) or "utf-8")  # ASCII under the C locale without UTF-8 mode
    except (UnicodeEncodeError, LookupError):
        text = json.dumps(obj, indent=2, ensure_ascii=True)
    print(text)


def _finite(obj: Any) -> Any:
    """`obj` with each NaN or infinite float in it as None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        from model.calibration import percent_hint

        raise argparse.ArgumentTypeError(f"{text} is not a rate in [0, 1){percent_hint(value)}")
    return value + 0.0  # -0 is 0: stored as -0.0, the policy read "--far -0.0" in the manifest and reports


def name_list(text: str | None) -> list[str]:
    """A comma-separated option as its non-empty, stripped names ("crack, stain," -> ["crack", "stain"])."""
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def names_given(text: str | None, flag: str) -> list[str]:
    """name_list, each name once, refusing a value that names nothing (" , "), which read as not given."""
    names = list(dict.fromkeys(name_list(text)))
    if text and not names:
        raise InspectorError(f"{flag} {text!r}: no names; give them comma-separated, e.g. crack,scratch")
    return names


def int_list(text: str) -> tuple[int, ...]:
    """Comma-separated integers, each once: "1,,8" and "8,1,8" were taken (the second printed two columns for three)."""
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        values = ()
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated integers, e.g. 2,3,4")
    twice = next((v for i, v in enumerate(values) if v in values[:i]), None)
    if twice is not None:
        raise argparse.ArgumentTypeError(f"{text!r}: {twice} is given twice; give each once")
    return values


def path_of(what: str):
    """An argparse type for a file or folder argument that refuses a blank value: `"$DIR"` with DIR unset is '', which
    pathlib reads as '.', so `inspect MODEL ""` inspected every image under the working folder, `report --out ""` and
    `synth --out ""` wrote into it, `inspect ""` ended in a traceback and `--config ""` was taken as no config."""
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{text!r} names no {what}; give one (an unset shell variable gives '')")
        return text
    return parse


def roi(text: str) -> tuple[int, int, int, int]:
    """--roi X,Y,W,H: a region of interest in pixels (model.framing.check_roi)."""
    from model.framing import ROI_HINT, check_roi

    try:
        return check_roi(tuple(int(v) for v in text.split(",")))
    except (ValueError, InspectorError):
        raise argparse.ArgumentTypeError(f"{text!r}: {ROI_HINT}") from None


def at_least(minimum: int):
    """An argparse type: a whole number >= `minimum` (counts, repeats, threads)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least {minimum}")
        return value
    return parse


def positive_number(text: str) -> float:
    """An argparse type: a finite number above 0 (rates, seconds)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: give a number above 0")
    return value


def seed(text: str) -> int:
    """--seed: a whole number from 0 to 2**32 - 1, as NumPy and torch take it."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number from 0 to {2**32 - 1}")
    return value


def policy_from(args: argparse.Namespace):
    from model.calibration import Policy

    if getattr(args, "escape", None) is not None and getattr(args, "far", None) is not None:
        raise InspectorError("give either --escape or --far, not both")
    if getattr(args, "escape", None) is not None:
        return Policy("escape", args.escape)
    if getattr(args, "far", None) is not None:
        return Policy("far", args.far)
    return None


def add_policy_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("calibration (default: escape 1% with defect images, else false alarms 1%)")
    g.add_argument("--escape", type=fraction, metavar="RATE", help="target fraction of defects allowed to pass, e.g. 0.01")
    g.add_argument("--far", type=fraction, metavar="RATE", help="target fraction of good parts failed (false alarms), e.g. 0.01")


def load_average() -> float | None:
    """This machine's 1-minute load average (other processes' load, read before a benchmark's own work), or None."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # not on every platform
        return None


def median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of `repeat` calls of `fn`, in seconds (the benchmarks' timing loop)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _is_model(path: Path) -> bool:
    from inspector.engines import FACTORIES, artefact_kind

    try:
        return (path / "manifest.json").is_file() if path.is_dir() else path.is_file() and artefact_kind(path) in FACTORIES
    except OSError:
        return False


def model_first(command: str, model: str | Path, *others: str | Path) -> None:
    """The model and the images given the other way round were named by what went wrong next ("folder mt.ckpt: no images",
    "--exports good: no .onnx files"): say the order instead."""
    if _is_model(Path(model)):
        return
    for other in others:
        if _is_model(Path(other)):
            order = " ".join(map(str, [other, model, *(o for o in others if o != other)]))
            raise InspectorError(f"{command}: {other} is the model and {model} is not; give the model first: `inspector {command} {order}`")


def open_store(db: str | Path, readonly: bool = True) -> Any:
    """The result store at `db` (its data directory, or the inspections.sqlite in it); never a new, empty one."""
    from inspector.store import DB_NAME, Store
    from model.folders import dead_link

    root = Path(db)
    root = root.parent if root.name == DB_NAME else root
    if why := dead_link(root):  # a share not mounted, or a loop, said to have "no inspections.sqlite there"
        raise InspectorError(f"store {root}: {why}")
    if root.is_file():  # a copied database renamed (backup.sqlite) was said to have "no inspections.sqlite there"
        raise InspectorError(f"store {root}: is a file; give the data directory (its {DB_NAME} and images/), or name a copied "
                             f"database {DB_NAME} in a folder of its own")
    if not readonly and not (root / DB_NAME).is_file():  # a reader says the same itself
        raise InspectorError(f"store {root}: no {DB_NAME} there; give the data directory the inspector writes to")
    return Store(root, readonly=readonly)
