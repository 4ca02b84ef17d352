"""Datasets on disk: the MVTec AD layout, or a plain folder of good images."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from model.errors import InspectorError
from model.hashing import digest_set_sha256, sha256_file
from model.images import (
    FORMATS,
    MASK_SUFFIXES,
    broken_links_note,
    files_by_lower_name,
    hidden_folder,
    list_images,
    named_like,
    only_dead_links,
    scan_images,
    walk_folders,
)
from model.label_names import GOOD


@dataclass(frozen=True)
class Sample:
    """One image with its label: `defect_type` is "good" or the defect folder's name."""

    path: Path
    defect_type: str = GOOD
    mask_path: Path | None = None

    @property
    def is_defect(self) -> bool:
        return self.defect_type != GOOD


@dataclass
class Dataset:
    """Good training images and, where the layout has them, labelled test images."""

    root: Path
    train: list[Sample]
    test: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left out, to be said (broken links)

    @property
    def defect_types(self) -> list[str]:
        return sorted({s.defect_type for s in self.test if s.is_defect})

    @cached_property
    def test_digests(self) -> list[str]:
        """Each test image file's sha256, in order. Read once: the test images are not changed after it is taken."""
        return [sha256_file(s.path) for s in self.test]

    @property
    def test_sha256(self) -> str:
        """One sha256 of the test images with their labels (model.hashing.labelled_set_sha256): what `fit` calibrated
        on, and what `eval` judged."""
        return digest_set_sha256(zip(self.test_digests, (s.defect_type for s in self.test), strict=True))

    @cached_property
    def masks_sha256(self) -> str:
        """One sha256 of the test images' masks, each with its image's digest: what fit chose the pixel threshold on
        (test_sha256 knows the images and labels alone, and masks redrawn since were called the ones it was chosen on)."""
        return digest_set_sha256((digest, sha256_file(s.mask_path) if s.mask_path else "-")
                                 for s, digest in zip(self.test, self.test_digests, strict=True) if s.is_defect)


def _masks_of(root: Path, defect_type: str) -> dict[str, Path]:
    """ground_truth/<type>'s files (files_by_lower_name): `000_mask.PNG` was no mask of 000.png here."""
    folder = root / "ground_truth" / defect_type
    try:
        return files_by_lower_name(folder) if folder.is_dir() else {}
    except OSError as exc:
        raise InspectorError(f"masks {folder}: cannot be read ({exc.strerror}); give this user read access to it") from None


def defect_type_layout(folder: Path) -> Path | None:
    """The MVTec AD layout (or `inspector synth` output) whose test/<type> of defects `folder` is, if it is one."""
    folder = folder.resolve()
    layout = folder.parent.parent
    if folder.parent.name != "test" or folder.name.lower() == GOOD:
        return None
    return layout if (layout / "ground_truth").is_dir() or (layout / "train").is_dir() else None


def _refuse_labelled(root: Path) -> None:
    """A plain folder is read as good images, so one holding an MVTec AD layout (its ground_truth/ masks, or
    good/ beside folders of defect images), or one of its test/<type> folders, would silently teach the model its
    defects: refuse it, naming the folder."""
    if (layout := defect_type_layout(root)) is not None:
        raise InspectorError(f"data {root}: is the defect type {root.resolve().name!r} of the MVTec AD layout {layout} "
                             f"(test/<type>), whose images would be learnt as good; give {layout / 'train' / GOOD}, or "
                             "the layout's root folder")
    for here, subs, _ in walk_folders(root):  # as the images are found: a linked layout would be learnt too
        d = Path(here)
        subs[:] = [s for s in subs if not hidden_folder(s)]  # not read for images (scan_images), so none learnt as good
        if "ground_truth" in subs:
            raise InspectorError(f"data {root}: {d} is an MVTec AD layout (it has ground_truth/), whose defects "
                                 "would be learnt as good; give that folder itself, or a folder of good images only")
        # good/ in any case: `Good/` beside NEU's type folders (a Windows user's) was fitted with them, defects as good parts
        good = next((s for s in subs if s.lower() == GOOD), None)
        others = [s for s in subs if s != good and list_images(d / s, recursive=True)] if good else []
        if others:
            way = ("or the MVTec AD layout's root folder" if d.name == "test" else
                   f"with `--labels {d}` to name the defect types (its {good}/ is skipped there)")
            raise InspectorError(f"data {root}: {d} holds {good}/ beside {', '.join(s + '/' for s in others)}, whose "
                                 f"images would be learnt as good; give {d / good}, {way}")


def refuse_defect_labels(root: Path, images: list[Path]) -> None:
    """Images with a mask or box file beside them are labelled defects (a `fit --labels` folder): learnt as good,
    they would pass."""
    folders: dict[Path, dict[str, Path]] = {}  # each folder listed once (files_by_lower_name), as the labels are found in any case
    first: tuple[Path, Path] | None = None
    any_good = False
    for image in images:
        files = folders.setdefault(image.parent, files_by_lower_name(image.parent))
        label = named_like(files, image, "_mask", MASK_SUFFIXES) or named_like(files, image, "", (".xml",))
        first = first or (label and (image, label))
        any_good = any_good or label is None
        if first and any_good:
            break
    if first is None:
        return
    image, label = first
    if not any_good:
        # NEU's layout: type folders of labelled defects and not one good image. "give a folder of good images (defect
        # examples go to fit --labels)" left such a user nowhere to go; say what each way forward needs. The labels are
        # the folder of <type>/ folders: the one above, where `root` is one type's folder itself
        labels = root if any(p.parent != root for p in images) else root.parent
        from model.fit_types import shots_command  # --shots that its types allow (a hint's 5 was refused of 2 images)

        raise InspectorError(f"data {root}: {image} has a defect label beside it ({label.name}), as every one of its "
                             f"{len(images)} images has: these are labelled defects, with no good image among them, and a "
                             "model learns the part from good images; with a folder of good parts, `inspector fit GOOD_DIR "
                             f"--out CKPT --labels {labels}` fits it and names these types, and "
                             f"{shots_command('efficientnet-lite0', labels)} measures now how well the types are told apart")
    raise InspectorError(f"data {root}: {image} has a defect label beside it ({label.name}), so this folder holds "
                         "labelled defects, which would be learnt as good; give a folder of good images (defect "
                         "examples go to fit --labels)")


LAYOUT_FOLDERS = ("train", "test", "ground_truth")


def _refuse_miscased_layout(root: Path) -> None:
    """`Train/` and `Test/` (a Windows user's) were no MVTec AD layout: beside a lower-case test/ there were "no good images
    found", and alone the whole layout was read as a plain folder of good parts."""
    try:
        names = {d.name for d in root.iterdir() if d.is_dir()}
    except OSError:  # said where the folder is read
        return
    for want in LAYOUT_FOLDERS:
        other = next((n for n in sorted(names) if n.lower() == want), None) if want not in names else None
        # a lot's folder called Test/ in a plain folder of good parts is read as ever: a layout's holds good/
        if other and (want == "ground_truth" or any(d.is_dir() and d.name.lower() == GOOD for d in (root / other).iterdir())):
            raise InspectorError(f"data {root}: {root / other} must be named {want} (lower case) to be read as the MVTec AD "
                                 "layout's; rename it")


def _good_named_otherwise(root: Path) -> str:
    """What to do where train/ has no good/ but another folder of images (ok/, normal/, a lot's name)."""
    train = root / "train"
    others = [d for d in sorted(train.iterdir()) if d.is_dir() and list_images(d, recursive=True)] if train.is_dir() else []
    if not others or (train / GOOD).is_dir():
        return "put good parts there"
    return (f"{train} holds {', '.join(d.name + '/' for d in others)} instead: the good training images must be in "
            f"{train / GOOD}; rename or move {'it' if len(others) == 1 else 'them'} there")


def _refuse_misnamed_good(root: Path) -> None:
    """test/Good would be read as a defect type, and train/Good not at all."""
    for split in (root / "train", root / "test"):
        for d in sorted(split.iterdir()) if split.is_dir() else ():
            if d.is_dir() and d.name != GOOD and d.name.lower() == GOOD:
                raise InspectorError(f"data {root}: {d} must be named {GOOD} (lower case) to hold good images; rename it")


def _nested_images(folder: Path, read: list[Path]) -> list[str]:
    """A note when a test/<type> folder has images in folders below it, which are not read (test/<type>/ itself is the
    label; ground_truth/<type>/ pairs masks by name alone): a lot's folder of defects left eval and fit unsaid."""
    try:
        below = sorted(set(scan_images(folder, recursive=True).images) - set(read))
    except InspectorError:  # a folder below it that cannot be listed: nothing there is read anyway
        return []
    return [f"{folder} has {len(below)} image(s) in folders below it (e.g. {below[0]}), left out: only the images in "
            f"test/<type>/ itself are read; move them up into {folder}"] if below else []


def _unmatched_masks(folder: Path, masks: dict[str, Path], samples: list[Sample]) -> list[str]:
    """A note when a defect type's ground_truth `folder` holds files (`masks`, as _masks_of listed them) but some of its
    images have no mask (masks named `000.png`, not `000_mask.png`): the pixel metrics said only that they had none."""
    maskless = [s for s in samples if s.is_defect and s.mask_path is None]
    if not maskless:
        return []
    used = {s.mask_path for s in samples if s.mask_path is not None}
    unused = [f for f in masks.values() if f not in used]  # in name order, as files_by_lower_name lists them
    image = maskless[0].path
    return [f"{folder} holds {len(unused)} file(s) that are no image's mask (e.g. {unused[0].name}), and {len(maskless)} "
            f"{folder.name} image(s) have none: the mask of {image.name} must be named {image.stem}_mask.png; rename the "
            "masks to count those images in the pixel metrics"] if unused else []


def _unmatched_mask_folders(root: Path) -> list[str]:
    """A note for each ground_truth/<folder> that no test/<type> folder is named as (Blob/ beside test/blob/, scratches/
    beside test/scratch/): its masks were left unused, and eval said only that the defect images had none (fit
    calibrates the pixel threshold on them too)."""
    try:
        named = {d.name for d in (root / "test").iterdir() if d.is_dir()}
        types = sorted(name for name in named if name.lower() != GOOD)
        folders = sorted(d for d in (root / "ground_truth").iterdir() if d.is_dir() and d.name not in named and not d.name.startswith("."))
    except OSError:  # no ground_truth/ (or test/) folder: nothing unmatched
        return []
    notes = []
    for d in folders:
        like = next((t for t in types if t.lower() == d.name.lower()), None) or next(iter(difflib.get_close_matches(d.name, types, 1)), None)
        notes.append(f"{d}: there is no test/{d.name}, so the masks in it are not used"
                     + (f"; if they are test/{like}'s, rename the folder {like}" if like else "; name it as its defect type's test/ folder"))
    return notes


def _boxes_not_masks(folder: Path, samples: list[Sample]) -> list[str]:
    """A note when a test/<type> folder's maskless images have Pascal VOC box files beside them (NEU's layout moved into
    test/): eval said only that none had a ground_truth mask, and left the boxes' owner guessing why."""
    files = files_by_lower_name(folder)
    boxed = [b for s in samples if s.is_defect and s.mask_path is None and (b := named_like(files, s.path, "", (".xml",)))]
    return [f"{folder} has {len(boxed)} box file(s) beside its images (e.g. {boxed[0].name}), which are not read here: the pixel "
            f"metrics and the pixel threshold need masks, ground_truth/{folder.name}/<image name>_mask.png (white where the "
            "defect is; a box can be drawn as a white rectangle); the images count in the image metrics"] if boxed else []


def _subfolders_note(root: Path, images: list[Path]) -> list[str]:
    """A plain folder whose images all lie in two or more subfolders: NEU's type folders without their box files were
    fitted as 48 good parts with no word. Lots or days in folders of their own read the same, so a note, not a refusal."""
    subs = sorted({p.relative_to(root).parts[0] for p in images if p.parent != root})
    if len(subs) < 2 or any(p.parent == root for p in images):
        return []
    named = ", ".join(s + "/" for s in subs[:4]) + (f" and {len(subs) - 4} more" if len(subs) > 4 else "")
    return [f"data {root}: its images lie in {len(subs)} subfolders ({named}), all read as good parts; if they are folders "
            f"of defect types, fit the good parts alone and give this folder to --labels"]


def load_dataset(path: str | Path, require_train: bool = True) -> Dataset:
    """Discover a dataset: `train/good` + `test/<type>` + `ground_truth/<type>/<id>_mask.png`, or a plain folder."""
    root = Path(path)
    if not root.exists():
        raise InspectorError(f"data {root}: no such folder")
    if not root.is_dir():
        raise InspectorError(f"data {root}: is a file; give a folder of images or an MVTec AD layout folder")
    _refuse_miscased_layout(root)
    if (root / "train").is_dir() or (root / "test").is_dir():
        _refuse_misnamed_good(root)
        notes: list[str] = []
        good = root / "train" / GOOD
        scan = good_scan = scan_images(good, recursive=True) if good.is_dir() else None
        train = [Sample(p) for p in scan.images] if scan else []
        notes += broken_links_note(scan, good) if scan else []
        test: list[Sample] = []
        if (root / "test").is_dir():
            for type_dir in sorted(d for d in (root / "test").iterdir() if d.is_dir()):
                scan = scan_images(type_dir)
                notes += broken_links_note(scan, type_dir)
                masks = _masks_of(root, type_dir.name) if type_dir.name != GOOD else {}
                samples = [Sample(p, type_dir.name, named_like(masks, p, "_mask", MASK_SUFFIXES)) for p in scan.images]
                notes += _nested_images(type_dir, scan.images) + _unmatched_masks(root / "ground_truth" / type_dir.name, masks, samples)
                notes += _boxes_not_masks(type_dir, samples)
                test += samples
            notes += _unmatched_mask_folders(root)
        dataset = Dataset(root, train, test, notes)
    else:
        if require_train:
            _refuse_labelled(root)
        scan = good_scan = scan_images(root, recursive=True)
        if require_train:
            refuse_defect_labels(root, scan.images)
        dataset = Dataset(root, [Sample(p) for p in scan.images], notes=broken_links_note(scan, root)
                          + (_subfolders_note(root, scan.images) if require_train else []))
    if require_train and not dataset.train:
        where = root / "train" / GOOD if (root / "train").is_dir() else root
        if dead := good_scan and only_dead_links(good_scan):
            raise InspectorError(f"data {where}: no good images: {dead}")
        raise InspectorError(f"data {where}: no good images found ({FORMATS}); {_good_named_otherwise(root)}")
    return dataset
