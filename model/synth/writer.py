"""Writing synthetic defect datasets (MVTec AD layout + labels JSON + contact sheet) from a folder of good images."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from model.data import defect_type_layout
from model.errors import InspectorError
from model.folders import dead_link
from model.images import IMAGE_SUFFIXES, broken_links_note, high_bit_depth, list_images, only_dead_links, read_image, scan_images
from model.progress import BarFactory, silent
from model.synth import CHANGED, REGION_TYPES, SEVERITY, SEVERITY_FREE, check_types, donor_index, draw, is_grey, synthesize


@dataclass
class SynthRecord:
    """One generated defect image: where it is, what it is, where it came from."""

    image: str
    mask: str
    type: str
    source: str
    severity: float | None  # None: a type drawn over its full range whatever the severity (SEVERITY_FREE)
    area_px: int
    box: list[int]  # x, y, w, h of the mask
    donor: str | None = None  # the good image a transplant's region came from (None: other types)


def readable_goods(good_dir: str | Path) -> list[Path]:
    """The good images in `good_dir` (not its subfolders, where an earlier set of generated defects may lie)."""
    folder = Path(good_dir)
    if not folder.is_dir():
        raise InspectorError(f"good folder {good_dir}: {'is a file' if folder.exists() else 'no such folder'}; point at a folder of good parts")
    if (folder / "train" / "good").is_dir():  # its test/ defects must not be taken for good parts
        raise InspectorError(f"good folder {good_dir}: holds the MVTec AD layout; give its good images, {folder / 'train' / 'good'}")
    if is_synth_output(folder):  # its contact sheet and defects would be drawn on as good parts
        raise InspectorError(f"good folder {good_dir}: is an `inspector synth` output (it has its labels.json); point at a folder of good parts")
    _refuse_defect_type_folder(good_dir, folder.resolve())
    from model.data import refuse_defect_labels

    scan = scan_images(folder)
    paths = scan.images
    if dead := only_dead_links(scan):
        raise InspectorError(f"good folder {good_dir}: {dead}, or point at a folder of good parts")
    if not paths:
        if nested := list_images(folder, recursive=True):  # e.g. NEU's <type>/ folders of labelled defects: said as fit says it
            refuse_defect_labels(folder, nested)
            raise InspectorError(f"good folder {good_dir}: its {len(nested)} images are in subfolders (e.g. {nested[0].parent}), "
                                 "which synth does not read; point at the folder of good parts itself")
        raise InspectorError(f"good folder {good_dir}: no images ({', '.join(IMAGE_SUFFIXES)}) found; point at a folder of good parts")
    refuse_defect_labels(folder, paths)  # as fit refuses them: a folder of labelled defects is no source of good parts
    return paths


def _refuse_defect_type_folder(good_dir: str | Path, folder: Path) -> None:
    """A layout's test/<type> (its masks in ground_truth/<type>, or an earlier synth output's) holds defects: drawn on
    as good parts, they made defects on defects, labelled with the new defect's mask alone."""
    if (layout := defect_type_layout(folder)) is None:
        return
    good = layout / "train" / "good"
    where = f"give its good images, {good}" if good.is_dir() else "point at a folder of good parts"
    raise InspectorError(f"good folder {good_dir}: is the defect type {folder.name!r} of the MVTec AD layout {layout} (test/<type>), "
                         f"whose images are defects; {where}")


def is_synth_output(folder: Path) -> bool:
    """A folder `inspector synth` wrote (its labels.json says so)."""
    try:
        return json.loads((folder / "labels.json").read_bytes()).get("generator") == "inspector synth"
    except (OSError, ValueError, AttributeError):
        return False


def check_out(good_dir: str | Path, out: str | Path) -> None:
    """--out must not lie in the good folder: fit reads a good folder with its subfolders, and learnt the generated
    defects (and the contact sheet) as good parts."""
    if why := dead_link(Path(out)):  # resolve() raised RuntimeError of a loop
        raise InspectorError(f"--out {out}: {why}")
    good, target = Path(good_dir).resolve(), Path(out).resolve()
    if target == good or target.is_relative_to(good):
        raise InspectorError(f"--out {out}: lies in the good folder {good_dir}, where fit would learn the generated defects as "
                             "good parts; write them to a folder of their own")


CONTACT_SHEET = "contact_sheet.png"
# written before a run's first image and removed once its labels.json is: a run killed (SIGKILL, a power cut) leaves it,
# naming the files that run wrote, which `--force` replaces (refused before, as files "no earlier synth run wrote")
UNFINISHED = ".synth-unfinished.json"
MIN_SIDE = 16  # px: below this the generators have no room to draw a defect
CACHE_BYTES = 1 << 30  # good images kept decoded between defects: 65 line-scan frames of 200 MB each were kept before
MASK_RULE = (f"a mask is every pixel its defect changed by more than {CHANGED} grey levels (for {', '.join(sorted(REGION_TYPES))}: "
             "the whole replaced region too); no pixel outside it differs from the source image")


class _GoodCache(dict):
    """Decoded good images by path, emptied before they would hold more than `limit` bytes; `deep` is the first
    one used that is a 16-bit or float file."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.deep: Path | None = None

    def load(self, path: Path, goods: list[Path]) -> tuple[Path, np.ndarray]:
        if path not in self:
            used, rgb = _read_good(path, goods)
            if self.deep is None and high_bit_depth(used):  # asked of the images used only: a header each, not the whole folder's
                self.deep = used
            if self.nbytes + rgb.nbytes > self.limit:
                self.clear()
            self[path] = used, rgb
        return self[path]

    @property
    def nbytes(self) -> int:
        return sum(rgb.nbytes for _, rgb in self.values())


def _read_good(path: Path, goods: list[Path]) -> tuple[Path, np.ndarray]:
    """(the image used, its RGB): an unreadable or too small good image is replaced by the next usable one (and said so)."""
    for candidate in [path, *(g for g in goods if g != path)]:
        try:
            rgb = read_image(candidate)
            if min(rgb.shape[:2]) < MIN_SIDE:
                raise InspectorError(f"image {candidate}: {rgb.shape[1]}x{rgb.shape[0]} px is too small to draw defects on "
                                     f"(needs at least {MIN_SIDE}x{MIN_SIDE})")
            return candidate, rgb
        except InspectorError as exc:
            if candidate is path:
                print(f"warning: skipping {exc}", file=sys.stderr)
    raise InspectorError(f"good folder {path.parent}: none of the images can be used (unreadable, or smaller than {MIN_SIDE}x{MIN_SIDE} px); "
                         "give a folder of readable good images")


def _synthesize_all(goods: list[Path], kinds: list[str], out: Path, n: int, seed: int, severity: tuple[float, float],
                    cache: _GoodCache, records: list[SynthRecord], written: list[Path], bar) -> None:
    """The generation loop of write_synthetic: appends to `records`, and each file it starts to `written`."""
    for i in range(n):
        rng, pick, sev = draw(seed, i, len(goods), severity)
        kind, src = kinds[i % len(kinds)], goods[pick]
        d = donor_index(len(goods), pick, kind, rng)
        donor = None if d is None else cache.load(goods[d], goods)
        used, rgb = cache.load(src, goods)
        img, mask = synthesize(rgb, kind, rng, sev, donor=None if donor is None else donor[1])
        name = f"{i:05d}"
        img_path = out / "test" / kind / f"{name}.png"
        mask_path = out / "ground_truth" / kind / f"{name}_mask.png"
        img_path.parent.mkdir(parents=True, exist_ok=True)
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        stored = img[..., 0] if is_grey(rgb) else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)  # a grey part stays a grey file
        for path, pixels in ((img_path, stored), (mask_path, mask.astype(np.uint8) * 255)):
            written.append(path)
            if not cv2.imwrite(str(path), pixels):
                raise InspectorError(f"--out {out}: cannot write {path.name}; is the disk full?")
        x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
        records.append(SynthRecord(str(img_path.relative_to(out)), str(mask_path.relative_to(out)), kind, str(used.resolve()),
                                   None if kind in SEVERITY_FREE else round(sev, 3), int(mask.sum()), [x, y, w, h],
                                   None if donor is None else str(donor[0].resolve())))
        bar.update(1)


def _remove(paths: list[Path], out: Path) -> None:
    """Delete files this run wrote and the folders under `out` they leave empty."""
    for path in paths:
        path.unlink(missing_ok=True)
    for folder in sorted({p.parent for p in paths} | {p.parent.parent for p in paths}, reverse=True):
        if folder != out and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _previous_files(out: Path) -> list[Path]:
    """The images and masks an earlier `synth` output in `out` lists (resolved, inside `out`); [] for none."""
    try:
        old = json.loads((out / "labels.json").read_bytes())
        if old.get("generator") != "inspector synth":
            return []
        listed = [r[key] for r in old["images"] for key in ("image", "mask")]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    root = out.resolve()
    return [p for p in ((out / str(rel)).resolve() for rel in listed) if p.is_relative_to(root)]  # a hand-edited list stays inside


def _unfinished_files(out: Path) -> list[Path]:
    """The files a killed run in `out` may have written (its UNFINISHED note; resolved, inside `out`); [] for none."""
    try:
        run = json.loads((out / UNFINISHED).read_bytes())
        planned = _planned(out, int(run["n"]), [str(k) for k in run["types"]])
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return []
    root = out.resolve()
    return [p for p in (f.resolve() for f in planned) if p.is_relative_to(root)]


def _planned(out: Path, n: int, kinds: tuple[str, ...] | list[str]) -> list[Path]:
    """Every file a run of `n` images over `kinds` writes in `out`, named as _synthesize_all names them."""
    files = [out / "labels.json", out / CONTACT_SHEET]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        files += [out / "test" / kind / f"{i:05d}.png", out / "ground_truth" / kind / f"{i:05d}_mask.png"]
    return files


def check_overwrite(out: str | Path, n: int, kinds: tuple[str, ...] | list[str]) -> None:
    """--force replaces an earlier synth output, not other files: a labels.json or test/<type>/00000.png that no synth
    run wrote (a dataset's own, with --out its root) was overwritten unsaid, and deleted if the run then failed."""
    out = Path(out)
    if not out.is_dir():
        return
    ours = set(_previous_files(out)) | set(_unfinished_files(out))
    if is_synth_output(out):
        ours |= {(out / "labels.json").resolve(), (out / CONTACT_SHEET).resolve()}
    clash = next((p for p in _planned(out, n, kinds) if (p.exists() or p.is_symlink()) and p.resolve() not in ours), None)
    if clash is not None:
        raise InspectorError(f"--out {out}: {clash.relative_to(out)} is already there and no earlier `inspector synth` run there "
                             "wrote it; --force replaces only such a run's files (those its labels.json lists): move it, or "
                             "choose another folder")


def remove_previous(out: Path) -> None:
    """Before writing over an earlier `synth` output (--force): delete the images and masks its labels.json lists,
    then that labels.json and contact sheet (a new run that fails leaves no list of files gone); files it did
    not write stay. So are those of a run killed there before its labels.json was written."""
    unfinished = [p for p in _unfinished_files(out) if p.is_file()]
    if unfinished:
        _remove(unfinished, out.resolve())
        (out / UNFINISHED).unlink(missing_ok=True)
    if not is_synth_output(out):
        return
    paths = _previous_files(out)
    _remove([p for p in paths if p.is_file()], out.resolve())
    for name in ("labels.json", CONTACT_SHEET):
        (out / name).unlink(missing_ok=True)


def check_count(n: int) -> None:
    """--n must ask for at least one image."""
    if n < 1:
        raise InspectorError(f"--n {n}: give the number of defect images to make (at least 1)")


BLOCK = 4096  # bytes: a file takes whole blocks of its disk
RECORD_BYTES = 512  # an image's entry in labels.json, about


def _stored_bytes(rgb: np.ndarray, encode: bool) -> int:
    """Disk bytes of one defect image made on `rgb` and its mask, as _synthesize_all writes them: their PNGs (a defect
    changes a small part of the image, so its PNG is about the size of the good image's), or with `encode` off a bound
    no PNG of them passes (their pixels, a filter byte per row, zlib's few bytes per block)."""
    stored = rgb[..., 0] if is_grey(rgb) else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    planes = (stored, np.zeros(rgb.shape[:2], np.uint8))
    sizes = [cv2.imencode(".png", p)[1].size if encode else int(p.size * 1.01) + p.shape[0] + BLOCK for p in planes]
    return sum(-(-size // BLOCK) * BLOCK for size in sizes) + RECORD_BYTES


def check_room(out: Path, n: int, goods: list[Path], cache: _GoodCache, replace: bool) -> None:
    """--out's disk must hold the set: `--n 10000000` of 24-megapixel parts (about 7 s each) would write for days until
    the disk was full, every other writer on it failing too, and then remove it all. Estimated from up to 3 good images
    (the first, middle and last; encoded only where their raw size would not fit); with `replace`, the earlier
    output's files count as free, as they go first."""
    rgbs = [cache.load(goods[i], goods)[1] for i in sorted({0, len(goods) // 2, len(goods) - 1})]
    where = next(p for p in (out, *out.parents) if p.exists())
    free = shutil.disk_usage(where).free
    freed = sum(p.stat().st_size for p in _previous_files(out) if p.is_file()) if replace else 0
    if n * max(_stored_bytes(rgb, encode=False) for rgb in rgbs) <= free + freed:
        return
    each = sum(_stored_bytes(rgb, encode=True) for rgb in rgbs) / len(rgbs)
    if n * each > free + freed:
        fits = int((free + freed) // each)
        fix = f"give --n {fits} or fewer, free space, or choose another folder" if fits else "free space or choose another folder"
        also = f" (and {freed / 2**20:.0f} MB of the earlier output it replaces)" if freed else ""
        raise InspectorError(f"--out {out}: {free / 2**20:.0f} MB free on its disk{also}, and {n} defect images of about "
                             f"{each / 2**20:.3g} MB each (image, mask and label) need about {n * each / 2**20:.0f} MB; {fix}")


def write_synthetic(good_dir: str | Path, out: str | Path, n: int, types: list[str] | None = None, seed: int = 0,
                    severity: tuple[float, float] = SEVERITY, progress: BarFactory = silent, replace: bool = False) -> list[SynthRecord]:
    """Make `n` defect images from the good images in `good_dir`, round-robin over `types`, into `out`; with
    `replace`, an earlier output there is removed first (else its images would mix in, unlisted in labels.json).

    Deterministic for a seed: image i uses good image and defect type chosen by a generator seeded with (seed, i).
    """
    check_count(n)
    kinds = check_types(types)
    check_out(good_dir, out)
    goods = readable_goods(good_dir)
    for note in broken_links_note(scan_images(good_dir), good_dir):  # fit says so of its good images; synth left them out unsaid
        print(f"note: {note}", file=sys.stderr)
    out = Path(out)
    cache = _GoodCache(CACHE_BYTES)
    check_room(out, n, goods, cache, replace)  # before an earlier output is removed (a refused run leaves it) and warnings,
    # and before check_overwrite, whose list of 2n planned files took minutes for --n 10000000
    check_overwrite(out, n, kinds)  # before anything is removed or written
    if n < len(kinds):  # --n 5 made five of the nine types, and labels.json listed all nine, unsaid
        print(f"warning: --n {n} is fewer than the {len(kinds)} types, which take turns: {', '.join(kinds[n:])} get no image; "
              f"give --n {len(kinds)} or more, or name fewer --types", file=sys.stderr)
    if "transplant" in kinds[:n] and len(goods) < 2:
        print(f"warning: good folder {good_dir} has one image: a transplant takes its surface from the part itself, turned, not "
              "from another part; add good images", file=sys.stderr)
    if replace:
        remove_previous(out)
    records: list[SynthRecord] = []
    written: list[Path] = []
    bar = progress("synthesising", n)
    out.mkdir(parents=True, exist_ok=True)
    (out / UNFINISHED).write_text(json.dumps({"n": n, "types": list(kinds)}), encoding="utf-8")
    with _terminate_as_interrupt():
        try:
            _synthesize_all(goods, kinds, out, n, seed, severity, cache, records, written, bar)
            bar.close()
            _finish(good_dir, out, seed, kinds, severity, cache, records, written)
        except BaseException:  # Ctrl-C, SIGTERM, a full disk: a half-written set without labels.json looked like a dataset to eval
            _remove(written, out)
            (out / UNFINISHED).unlink(missing_ok=True)
            raise
    return records


def _finish(good_dir: str | Path, out: Path, seed: int, kinds: tuple[str, ...], severity: tuple[float, float], cache: _GoodCache,
            records: list[SynthRecord], written: list[Path]) -> None:
    """The warnings, labels.json and the contact sheet of a generated set (each file added to `written` as it starts)."""
    if cache.deep is not None:  # silent before: a 12-bit camera's user found 8-bit files, each stretched differently
        print(f"warning: good images such as {cache.deep} have 16-bit or float pixels: the defect images are written as 8-bit "
              "PNGs, each stretched over its own range as inspector reads it; give 8-bit good images to keep their grey levels",
              file=sys.stderr)
    empty = [r for r in records if r.area_px == 0]
    if empty:  # e.g. a crack or cut-paste on a flat, featureless image changes nothing
        print(f"warning: {len(empty)} of {len(records)} generated images have an empty mask (no visible defect), e.g. {empty[0].image} "
              f"({empty[0].type}); they are listed in labels.json with area_px 0: drop them or use other types", file=sys.stderr)
    # paths absolute: ones relative to where synth ran led nowhere from anywhere else, labels.json's folder included
    labels = {"generator": "inspector synth", "seed": seed, "types": list(kinds), "severity": list(severity),
              "good_dir": str(Path(good_dir).resolve()), "mask_rule": MASK_RULE, "images": [asdict(r) for r in records]}
    written.append(out / CONTACT_SHEET)
    contact_sheet(out, records, out / CONTACT_SHEET)
    written.append(out / "labels.json")  # last: a set with its labels.json is whole
    (out / "labels.json").write_text(json.dumps(labels, indent=1), encoding="utf-8")
    (out / UNFINISHED).unlink()


class _Terminated(BaseException):
    """SIGTERM arrived while a set was being written."""


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (`timeout`, a CI job's or a service's stop) ends the block through its own cleanup, as Ctrl-C does, then
    reaches the handler it had (by default: the process ends, killed by it). Before, it killed the process at once,
    leaving thousands of images and masks without a labels.json, which a later `synth --force` refused to replace."""
    old = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or old in (signal.SIG_IGN, None):
        yield
        return
    caught: list[int] = []

    def on_term(number: int, _frame) -> None:
        caught.append(number)
        if len(caught) == 1:  # a second one must not cut the cleanup short
            raise _Terminated

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    except _Terminated:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
    if caught:  # the block was cut short and cleaned up: the signal goes where it went before
        signal.raise_signal(signal.SIGTERM)
        raise KeyboardInterrupt  # a handler that let the process go on: the set was not written


def contact_sheet(root: Path, records: list[SynthRecord], path: Path, per_type: int = 4, tile: int = 160) -> None:
    """A grid for a person to eyeball: one row per type, each defect image beside its mask outline."""
    by_type: dict[str, list[SynthRecord]] = {}
    for r in records:
        by_type.setdefault(r.type, []).append(r)
    rows = []
    for kind, recs in by_type.items():
        cells = []
        for r in recs[:per_type]:
            img = _in_tile(cv2.imread(str(root / r.image)), tile, 255)
            # any defect pixel marks its cell: sampled (nearest), a thin scratch on a large image kept a few dots of its outline
            mask = _in_tile(cv2.imread(str(root / r.mask), cv2.IMREAD_GRAYSCALE), tile, 0)
            outlined = img.copy()
            contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(outlined, contours, -1, (0, 0, 255), 1)
            cells += [img, outlined]
        while len(cells) < 2 * per_type:
            cells.append(np.full((tile, tile, 3), 255, np.uint8))
        label = np.full((tile, 110, 3), 255, np.uint8)
        cv2.putText(label, kind, (6, tile // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.hstack([label, *cells]))
    cv2.imwrite(str(path), np.vstack(rows))


def _in_tile(img: np.ndarray, tile: int, fill: int) -> np.ndarray:
    """`img` shrunk (area-averaged) to fit a tile x tile square, its aspect kept (a 600 x 16 px part was squeezed
    into a square, unrecognisable), centred on `fill`."""
    h, w = img.shape[:2]
    scale = tile / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST)
    canvas = np.full((tile, tile, *img.shape[2:]), fill, img.dtype)
    y, x = (tile - size[1]) // 2, (tile - size[0]) // 2
    canvas[y : y + size[1], x : x + size[0]] = small
    return canvas
