"""Labelled defect examples on disk: which type each image shows, and (optionally) where.

Two layouts are read:

- a labels folder: `LABELS_DIR/<type>/<id>.<png|jpg|...>`, with an optional pixel mask `<id>_mask.png`
  or a Pascal VOC box file `<id>.xml` beside each image (a `good/` folder is not a defect type; skipped);
- the MVTec AD layout: `test/<type>/<id>.png` with masks in `ground_truth/<type>/<id>_mask.png`.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.data import GOOD, load_dataset
from model.errors import InspectorError, first_few
from model.images import (
    IMAGE_SUFFIXES,
    MASK_SUFFIXES,
    broken_links_note,
    files_by_lower_name,
    hidden_folder,
    is_mask_name,
    list_images,
    named_like,
    only_dead_links,
    read_image,
    read_mask,
    scan_images,
)
from model.label_names import UNKNOWN, reserved_name, type_words


@dataclass(frozen=True)
class LabelledImage:
    """One defect example: its image, type, and where the defect is (a mask or a box file), if known."""

    path: Path
    type: str
    mask_path: Path | None = None
    boxes_path: Path | None = None


@dataclass
class LabelSet:
    """Labelled defect examples, with their type names in a fixed (sorted) order."""

    root: Path
    types: list[str]
    items: list[LabelledImage]
    notes: list[str] = field(default_factory=list)  # files that look like labels but were not taken as such

    @property
    def targets(self) -> np.ndarray:
        """Class index of each item, in `types` order."""
        index = {t: i for i, t in enumerate(self.types)}
        return np.array([index[it.type] for it in self.items], dtype=np.int64)

    def counts(self) -> dict[str, int]:
        c = Counter(it.type for it in self.items)
        return {t: c[t] for t in self.types}

    def subset(self, indices) -> LabelSet:
        """The same type list with only the chosen items (types keep their class index)."""
        return LabelSet(self.root, list(self.types), [self.items[int(i)] for i in indices])


def load_labels(path: str | Path) -> LabelSet:
    """Read a labels folder (`<type>/` folders) or an MVTec AD layout's `test/<type>` folders."""
    labels = _load_labels(Path(path))
    # "Unknown" sat beside `unknown` in type_probs; `unknown_/` and `good_/`, read as those words, were taken as types
    if reserved := reserved_name(labels.types):
        word = type_words(reserved)
        why = ("reserved for defects unlike every known type" if word == UNKNOWN else "the defect-free parts, not a defect type"
               if word == GOOD else "what a defect of no type is called")
        raise InspectorError(f"labels {labels.root}: a type may not be called {word!r}, in any case, _ as a space ({why}); "
                             f"rename the folder {reserved!r}")
    # a folder named " " or "_" was a type shown as a blank in every result, report and eval table
    if blank := next((t for t in labels.types if not type_words(t)), None):
        raise InspectorError(f"labels {labels.root}: the type folder {blank!r} has no name to show (only spaces or _); "
                             "rename it to the defect type it holds")
    _refuse_one_name_twice(labels)
    return labels


def _refuse_one_name_twice(labels: LabelSet) -> None:
    """Two type folders that read as one name (`scratches/` and `Scratches/`, `pitted_surface/` and `pitted surface/`, é
    composed and decomposed): one type's examples were split into two types, each named at about half its confidence,
    and the cross-validated accuracy counted their confusion as errors."""
    seen: dict[str, str] = {}
    for name in labels.types:
        other = seen.setdefault(type_words(name), name)
        if other != name:
            raise InspectorError(f"labels {labels.root}: the type folders {other!r} and {name!r} read as one type name (in any case, "
                                 "_ as a space); put their examples in one folder, or rename one")


def _load_labels(root: Path) -> LabelSet:
    if not root.is_dir():
        raise InspectorError(f"labels {root}: {'is a file' if root.exists() else 'no such folder'}; give a folder of <type>/ "
                             "subfolders of defect images")
    # an MVTec AD layout has test/<type>/ folders; a labels folder's type called "test" holds its images itself
    if (root / "test").is_dir() and any(d.is_dir() for d in (root / "test").iterdir()):
        for d in sorted((root / "test").iterdir()):  # load_dataset leaves an empty type out: said of a labels folder, and here
            if d.is_dir() and d.name != GOOD and not list_images(d):
                raise InspectorError(f"labels {d}: no images; add examples of this type or remove the folder")
        dataset = load_dataset(root, require_train=False)
        items = [LabelledImage(s.path, s.defect_type, s.mask_path) for s in dataset.test if s.is_defect]
        if not items:
            raise InspectorError(f"labels {root / 'test'}: no test/<type> folders with defect images (only good ones)")
        # the same checks as a labels folder's: one picture under two types was taught as both, unsaid
        items, notes = _one_of_each_image(root, items)
        links = [n for n in dataset.notes if str(root / "test") in n]  # of the labelled images; train/good's are fit's to say
        return LabelSet(root, sorted({it.type for it in items}), items, links + notes)
    # a NAS's @eaDir/ of thumbnails was a type, refused as one with no images
    folders = sorted(d for d in root.iterdir() if d.is_dir() and not hidden_folder(d.name) and d.name.lower() != GOOD)
    # a type folder linked from a share that is gone: its type was left out of the model, unsaid
    notes = [f"{d} -> {os.readlink(d)}: a link that leads nowhere, so its type {d.name} is left out; mount or copy what it points to"
             for d in sorted(root.iterdir()) if d.is_symlink() and not d.exists() and not hidden_folder(d.name)
             and not d.suffix]  # a folder's, as scan_images tells them (not a README's)
    if not folders:
        raise InspectorError(f"labels {root}: no <type>/ subfolders; {notes[0] if notes else _flat_labels_fix(root)}")
    items: list[LabelledImage] = []
    for folder in folders:
        scan = scan_images(folder)
        images = scan.images  # masks in any case left out (is_mask_name)
        notes += broken_links_note(scan, folder)  # a linked example that leads nowhere was left out, unsaid
        files = files_by_lower_name(folder)
        if not images:
            nested = next((d for d in sorted(folder.iterdir()) if d.is_dir() and not hidden_folder(d.name) and list_images(d, recursive=True)), None)
            dead = only_dead_links(scan)  # "add examples" of files that were there, as links
            where = f"its subfolder {nested.name}/ has some, but subfolders are not searched: put them in {folder.name}/ itself" \
                if nested else f"{dead}, or remove the folder" if dead \
                else f"add examples of this type ({'/'.join(s[1:] for s in IMAGE_SUFFIXES)}) or remove the folder"
            raise InspectorError(f"labels {folder}: no images; {where}")
        elsewhere: dict[str, list[Path]] = {}  # box files whose objects all name another type, by the names they give
        for image in images:
            mask = named_like(files, image, "_mask", MASK_SUFFIXES)
            boxes = named_like(files, image, "", (".xml",))
            if boxes is not None:
                names = sorted(set(_read_voc(boxes)[2]))  # read now, to fail naming the file rather than halfway through fitting
                # one filed in the wrong folder was taught as the folder's, unsaid; read as type names are (type_words), so
                # `pitted_surface` boxes in a folder renamed `Pitted surface` are its own
                if names and type_words(folder.name) not in map(type_words, names):
                    elsewhere.setdefault(", ".join(names), []).append(boxes)
            items.append(LabelledImage(image, folder.name, mask, boxes))
        # one line per name, not per file: a renamed folder of NEU's 142 rolled-in scale images gave 142 lines
        notes += [f"{files_[0]}{f' and {len(files_) - 1} more box file(s) in {folder.name}/' if len(files_) > 1 else ''}: "
                  f"{'their' if len(files_) > 1 else 'its'} boxes are named {names}, none {folder.name}, but "
                  f"{'they are' if len(files_) > 1 else 'it is'} in {folder.name}/; the folder's type is used"
                  for names, files_ in elsewhere.items()]
        notes += _stray_labels(folder, images) + _nested_note(folder, images)
    items, copies = _one_of_each_image(root, items)
    return LabelSet(root, [f.name for f in folders], items, notes + copies)


def _flat_labels_fix(root: Path) -> str:
    """What to do with a labels folder of images and no type folders: one type's folder given for the folder above it
    (`--labels neu/crazing`) was told only to make type folders."""
    generic = "put each defect type's images in a folder named after it"
    if not (n := len(list_images(root))):
        return generic
    return (f"its {n} image(s) lie in it directly: if it is one type's folder, give the folder that holds every type's folder "
            f"(perhaps {root.parent}); else {generic} ({root / '<type>'}/)")


def _nested_note(folder: Path, images: list[Path]) -> list[str]:
    """A note when a type folder that has images also has images in folders below it: those were left out, unsaid (a
    type folder with none there was refused, naming the subfolder)."""
    below = sorted(set(scan_images(folder, recursive=True).images) - set(images))
    return [f"{folder} has {len(below)} image(s) in folders below it (e.g. {below[0]}), left out: subfolders of a type folder "
            f"are not searched; move them up into {folder.name}/ to use them"] if below else []


def _stray_labels(folder: Path, images: list[Path]) -> list[str]:
    """Masks and box files of no image, and images named like a mask: a misnamed mask was learnt as one more example
    of its type, and a mask or box file whose image was renamed was dropped, unsaid."""
    stems = {p.stem.lower() for p in images}  # as named_like pairs them: in any case
    notes = [f"{p}: a mask of no image here (its image would be {p.stem[:-5]}.<png|jpg|...>); it is not used"
             for p in list_images(folder, masks=True) if is_mask_name(p) and p.stem[:-5].lower() not in stems]
    notes += [f"{p}: a box file of no image here; it is not used" for p in sorted(folder.iterdir())
              if p.suffix.lower() == ".xml" and p.is_file() and p.stem.lower() not in stems]
    notes += [f"{p}: named like a mask, but masks are named <image>_mask.png; it is used as one more {folder.name} image"
              for p in images if p.stem.lower().endswith(("-mask", " mask", ".mask"))]
    return notes


def _one_of_each_image(root: Path, items: list[LabelledImage]) -> tuple[list[LabelledImage], list[str]]:
    """Refuse the same picture in two type folders (it teaches the head that it is both); keep one of its copies within
    a type (each copy was one more example: counted twice, and a copy in another fold made the cross-validated
    accuracy and the `unknown` threshold in-sample) -> (kept items, a note of each copy left out)."""
    from model.hashing import sha256_file

    seen: dict[str, LabelledImage] = {}
    kept, notes = [], []
    for item in items:
        digest = sha256_file(item.path)
        other = seen.setdefault(digest, item)
        if other.type != item.type:
            raise InspectorError(f"labels {root}: {item.path} and {other.path} are the same image, labelled {item.type} and {other.type}; "
                                 "keep it in one type's folder")
        if other is item:
            kept.append(item)
        else:
            notes.append(f"{item.path}: the same image as {other.path}; the copy is left out (one example counts once)")
    return kept, notes


def check_images(labels: LabelSet, roi: tuple[int, int, int, int] | None = None) -> None:
    """Decode every labelled image and read its mask or boxes at its size, so that a bad one fails before fitting; with
    the model's fixed region of interest `roi` (x, y, w, h), each image must contain it (said after the anomaly fit before).
    All that cannot be used are named in one line: the first stopped the check, and the next one the following run."""
    from model.framing import crop

    bad = []
    for item in labels.items:
        try:
            rgb = read_image(item.path)
            read_region(item, rgb.shape[:2])
            crop(rgb, roi, str(item.path))
        except InspectorError as e:
            bad.append(e)
    if len(bad) == 1:
        raise bad[0]
    if bad:
        raise InspectorError(f"labels {labels.root}: {len(bad)} of {len(labels.items)} labelled images cannot be used: "
                             f"{first_few(bad)}; fix or remove them")


def parse_voc(path: Path) -> tuple[tuple[int, int] | None, list[tuple[int, int, int, int]]]:
    """A Pascal VOC annotation -> ((width, height) or None, boxes as (xmin, ymin, xmax, ymax))."""
    return _read_voc(path)[:2]


def _read_voc(path: Path) -> tuple[tuple[int, int] | None, list[tuple[int, int, int, int]], list[str]]:
    """parse_voc's size and boxes, and the objects' <name> texts (the types the file names)."""

    def bad(why: str) -> InspectorError:
        return InspectorError(f"box file {path}: {why}; expected Pascal VOC XML (<object><bndbox><xmin>..</xmin>...)")

    try:
        tree = ET.parse(path).getroot()
    except (ET.ParseError, OSError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise bad(f"not valid XML ({first})") from None
    if tree.tag != "annotation":
        raise bad(f"root element is <{tree.tag}>, not <annotation>")
    size = None
    size_el = tree.find("size")
    try:
        if size_el is not None and size_el.findtext("width") and size_el.findtext("height"):
            size = (int(float(size_el.findtext("width"))), int(float(size_el.findtext("height"))))
        boxes = []
        for obj in tree.iter("object"):
            bb = obj.find("bndbox")
            if bb is None:
                raise bad("an <object> has no <bndbox>")
            coords = [bb.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")]
            if any(c is None for c in coords):
                raise bad("a <bndbox> lacks one of xmin, ymin, xmax, ymax")
            x0, y0, x1, y1 = (int(round(float(c))) for c in coords)
            if x1 <= x0 or y1 <= y0:
                raise bad(f"box ({x0}, {y0}, {x1}, {y1}) is empty (max <= min)")
            boxes.append((x0, y0, x1, y1))
    except ValueError:
        raise bad("a size or box coordinate is not a number") from None
    names = [text for text in ((o.findtext("name") or "").strip() for o in tree.iter("object")) if text]
    return size, boxes, names


def read_region(item: LabelledImage, shape: tuple[int, int]) -> np.ndarray | None:
    """Where the defect is, as bool [H, W] for an image of `shape` (H, W); None when the item has no mask or boxes.

    Box coordinates are VOC's 1-based inclusive pixels; boxes reaching past the image are clipped, a box
    file written for an image of another size is an error.
    """
    if item.mask_path is not None:
        return read_mask(item.mask_path, shape)
    if item.boxes_path is None:
        return None
    size, boxes = parse_voc(item.boxes_path)
    h, w = shape
    if size is not None and size != (w, h) and size != (0, 0):
        raise InspectorError(f"box file {item.boxes_path}: written for a {size[0]}x{size[1]} image but {item.path.name} is {w}x{h}")
    region = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        if x0 > w or y0 > h or x1 < 1 or y1 < 1:  # clipped, it would mark nothing: a box of another image
            raise InspectorError(f"box file {item.boxes_path}: box {x0},{y0},{x1},{y1} lies outside {item.path.name} ({w}x{h}); "
                                 "fix the box or the file it names")
        region[max(y0 - 1, 0) : min(y1, h), max(x0 - 1, 0) : min(x1, w)] = True
    return region
