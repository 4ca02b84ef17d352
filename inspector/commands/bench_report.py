"""`inspector bench report --n 1000`: time to render a shift report of N inspections, and one inspection report.

Fills a temporary store with N realistic synthetic records (images for the failed parts, which are the
ones a shift report shows), then times what `inspector report` does: the store query plus HTML and PDF
rendering. Medians over --repeat runs, after one warm-up render (a daemon renders warm); the cold first
render is printed too. Targets: shift HTML+PDF under 5 s, one inspection PDF under 1 s; the shift's HTML alone,
timed in the same run, is the baseline its PDF is compared with.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inspector.commands.common import at_least, median_seconds, print_json
from model.errors import InspectorError, need
from model.folders import scratch_folder

SHIFT_TARGET_S, INSPECTION_TARGET_S = 5.0, 1.0
MAX_IMAGE_SIZE = 8192  # px a side, 67 MP: above a station's default largest image (50 MP); 100000 was a MemoryError traceback


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="time shift and inspection report rendering (HTML, PDF)", description=__doc__)
    p.add_argument("--n", type=at_least(1), default=1000, help="inspections in the shift (default 1000)")
    p.add_argument("--repeat", type=at_least(1), default=3, help="timed runs per measurement; medians are reported (default 3)")
    p.add_argument("--lang", type=_language, default="en", help="report language: en, zh or es (default en)")
    p.add_argument("--image-size", type=_image_size, default=512, metavar="PX",
                   help=f"side of the synthetic part images, 32 to {MAX_IMAGE_SIZE} (default 512)")
    p.add_argument("--keep", metavar="DIR", help="keep the store and reports in this folder instead of a temporary one")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _language(text: str) -> str:
    """--lang, checked before the store is filled (seconds for the default --n) rather than at the first render."""
    from reports.i18n import LANGUAGES

    if text not in LANGUAGES:
        raise argparse.ArgumentTypeError(f"{text!r}: choose one of {', '.join(LANGUAGES)}")
    return text


def _image_size(text: str) -> int:
    size = at_least(32)(text)
    if size > MAX_IMAGE_SIZE:
        raise argparse.ArgumentTypeError(f"{text!r}: give at most {MAX_IMAGE_SIZE} (px a side)")
    return size


def bench(n: int, repeat: int, lang: str, work: Path, image_size: int = 512) -> dict[str, Any]:
    import reports
    from inspector.store import Store
    from reports.sample import make_records

    t0 = time.perf_counter()
    store = Store(work / "store")
    shift_start = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
    try:
        records = make_records(n, root=store.root, start=shift_start, hours=8.0, image_size=image_size, images_for="fail")
    except MemoryError:  # its textures take about 80 bytes a pixel: 5 GB at the largest size
        store.close()
        raise InspectorError(f"--image-size {image_size}: not enough memory for synthetic images of that size; give a smaller one") from None
    for r in records:
        store.add(r)
    setup_s = time.perf_counter() - t0
    start, end = "2026-11-26T06:00:00.000Z", "2026-11-26T14:00:00.000Z"
    meta = {"start": start, "end": end, "station": records[0]["station"], "config": {"model": "station3.ckpt", "decision": {"min_region_px": 16}}}
    failed = next((r for r in records if r["verdict"] == "FAIL"), records[0])
    out = work / "reports"

    def shift(formats: tuple[str, ...]) -> Callable[[], Any]:
        return lambda: reports.render_shift(store.records(start, end), meta, out / "shift", formats, lang, store.root)

    def one(formats: tuple[str, ...]) -> Callable[[], Any]:
        return lambda: reports.render_inspection(store.get(failed["inspection_id"]), out / "inspection", formats, lang, store.root)

    try:
        cold = median_seconds(one(("html", "pdf")), 1)  # imports WeasyPrint, loads fonts, parses templates
        result = {
            "n": n, "repeat": repeat, "lang": lang, "image_size": image_size, "setup_s": round(setup_s, 2), "cold_first_inspection_s": round(cold, 3),
            "store_query_s": median_seconds(lambda: store.records(start, end), repeat),
            "shift_html_s": median_seconds(shift(("html",)), repeat),
            "shift_html_pdf_s": median_seconds(shift(("html", "pdf")), repeat),
            "inspection_html_s": median_seconds(one(("html",)), repeat),
            "inspection_pdf_s": median_seconds(one(("pdf",)), repeat),
        }
    except reports.ReportError as exc:
        raise InspectorError(str(exc)) from None
    finally:
        store.close()
    pdf = out / "shift" / f"{reports.render.shift_name(meta, lang)}.pdf"
    result["shift_pdf_bytes"] = pdf.stat().st_size if pdf.is_file() else None
    result["shift_pdf_vs_html"] = result["shift_html_pdf_s"] / max(result["shift_html_s"], 1e-9)  # the baseline in this run: HTML alone
    result["shift_vs_target"] = result["shift_html_pdf_s"] / SHIFT_TARGET_S
    result["inspection_vs_target"] = result["inspection_pdf_s"] / INSPECTION_TARGET_S
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}


def run(args: argparse.Namespace) -> int:
    # it times PDFs: said before the store is filled, and without render's "(or use --format html)", an option this lacks
    need("weasyprint", "pdf", "bench report (it times PDF rendering)")
    if args.keep is not None and not args.keep.strip():  # `--keep "$DIR"` with DIR unset ran in a temporary folder and kept nothing
        raise InspectorError("--keep '': give the folder to keep the store and reports in, or leave --keep out")
    if args.keep:
        work = Path(args.keep)
        if work.exists() and not work.is_dir():
            raise InspectorError(f"--keep {work}: is a file; give a new or empty folder")
        if work.exists() and any(work.iterdir()):
            raise InspectorError(f"--keep {work}: folder is not empty; give a new or empty folder")
        result = bench(args.n, args.repeat, args.lang, work, args.image_size)
    else:
        with scratch_folder("inspector-bench-report-") as tmp:
            result = bench(args.n, args.repeat, args.lang, tmp, args.image_size)
    if args.json:
        print_json(result)
        return 0
    r = result
    print(f"shift report of {r['n']} inspections ({r['lang']}, {r['image_size']} px images), median of {r['repeat']} runs;"
          f" setup {r['setup_s']} s (not timed)")
    print(f"  store query               {r['store_query_s']:8.3f} s")
    print(f"  shift HTML                {r['shift_html_s']:8.3f} s")
    print(f"  shift HTML + PDF          {r['shift_html_pdf_s']:8.3f} s   {r['shift_pdf_vs_html']:.2f}x HTML alone; "
          f"{r['shift_vs_target']:.2f}x of the {SHIFT_TARGET_S:.0f} s target (incl. query)")
    print(f"  inspection HTML           {r['inspection_html_s']:8.3f} s")
    print(f"  inspection PDF            {r['inspection_pdf_s']:8.3f} s   {r['inspection_vs_target']:.2f}x of the {INSPECTION_TARGET_S:.0f} s target")
    print(f"  cold first inspection     {r['cold_first_inspection_s']:8.3f} s   (HTML+PDF, includes importing WeasyPrint)")
    return 0
