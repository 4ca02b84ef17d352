"""Parts on a belt, from an MVTec-AD-layout dataset: how `fit --roi --locate` copes with parts that stop a little
differently each time, and how `fit --ignore` copes with a code printed on every part (docs/fit.md, "Regions of interest, moving and turned parts").

    python docs/belt.py make ../shared/data/magnetic_tile /tmp/belt   # plain/ belt/ turned/ stamped/ smudged/ offsets.json
    python docs/belt.py check /tmp/belt [--turned]                     # how exactly --locate [--turn] finds each part

`make` resizes every image (and mask) to PART px; `plain/` keeps them so, `belt/` places each at NOMINAL shifted by up to
JITTER px (the first training image unshifted: it is the reference) in a FRAME px frame of dark belt noise, `turned/`
the same, each also turned up to TURN degrees either way about its centre, and
`stamped/` marks a Data Matrix-like code, another on every part, at CODE (x, y, w, h), which covers what
is under it: the masks leave it out, and the defect images it covers whole are left out; `smudged/` is a test set
(`test/`, `ground_truth/`) of `stamped/`'s defect parts and its good parts with the right half of their code missing
(a printer running dry), no defect of the part: `inspector eval STAMPED_MODEL /tmp/belt/smudged --no-overlap`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

PART, FRAME, JITTER, NOMINAL, TURN = 160, 240, 20, 40, 8
ROI, MARGIN = (NOMINAL, NOMINAL, PART, PART), 24
CODE = (118, 6, 36, 36)  # a Data Matrix-like code: 16 x 16 modules of 2 px in a 2 px light quiet zone


def refuse(message: str) -> None:
    """One line on stderr and exit 2, as the inspector's commands refuse bad input."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def stamp(part: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The part with a code marked at CODE, another on every part, as parts carry for traceability: a solid L (left
    and bottom), a dotted top and right, random modules inside."""
    modules = rng.integers(0, 2, (16, 16)).astype(bool)
    modules[:, 0] = modules[-1, :] = True
    modules[0, :] = modules[:, -1] = np.arange(16) % 2 == 0
    x, y, w, h = CODE
    code = np.full((h, w), 220, np.uint8)
    code[2:-2, 2:-2] = np.where(np.kron(modules, np.ones((2, 2), bool)), 25, 220)
    out = part.copy()
    out[y : y + h, x : x + w] = code[..., None] if out.ndim == 3 else code
    return out


def on_belt(part: np.ndarray, belt: np.ndarray, dx: int, dy: int, angle: float) -> np.ndarray:
    """`part` turned by `angle` degrees (counter-clockwise as shown) about its centre, at NOMINAL + (dx, dy) on `belt`."""
    m = cv2.getRotationMatrix2D((PART / 2, PART / 2), angle, 1.0)
    m[:, 2] += (NOMINAL + dx, NOMINAL + dy)
    inside = cv2.warpAffine(np.ones((PART, PART), np.float32), m, (FRAME, FRAME)) > 0.5
    nearest = cv2.INTER_NEAREST if part.ndim == 2 else cv2.INTER_LINEAR  # masks stay 0/255
    out = belt.copy()
    out[inside] = cv2.warpAffine(part, m, (FRAME, FRAME), flags=nearest)[inside]
    return out


def make(src: Path, out: Path) -> None:
    from model.framing import region_mask

    # one generator each: the belt's offsets stay as they were before codes and turns were added
    rng, codes, turns = np.random.default_rng(0), np.random.default_rng(1), np.random.default_rng(2)
    if not (src / "train/good").is_dir() or not any(p.is_file() for p in (src / "train/good").iterdir()):
        refuse(f"{src}: no images in train/good; give an MVTec AD layout folder, e.g. ../shared/data/magnetic_tile")
    first = sorted(p for p in (src / "train/good").iterdir() if p.is_file())[0]
    offsets = {}
    for img in sorted(p for p in src.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".bmp") and "ground_truth" not in p.parts):
        rel = img.relative_to(src).with_suffix(".png")
        dx, dy = (0, 0) if img == first else (int(v) for v in rng.integers(-JITTER, JITTER + 1, 2))
        angle = 0.0 if img == first else round(float(turns.uniform(-TURN, TURN)), 2)
        offsets[str(rel)] = (dx, dy, angle)
        belt = rng.integers(10, 50, (FRAME, FRAME, 3), dtype=np.uint8)
        pairs = [(rel, cv2.resize(cv2.imread(str(img)), (PART, PART), interpolation=cv2.INTER_AREA), belt)]
        mask = src / "ground_truth" / rel.parent.name / f"{img.stem}_mask.png"
        if rel.parts[0] == "test" and mask.is_file():
            pairs.append((Path("ground_truth", rel.parent.name, mask.name),
                          cv2.resize(cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE), (PART, PART), interpolation=cv2.INTER_NEAREST),
                          np.zeros((FRAME, FRAME), np.uint8)))
        for path, part, frame in pairs:
            lying = on_belt(part, frame, dx, dy, angle)
            frame[NOMINAL + dy : NOMINAL + dy + PART, NOMINAL + dx : NOMINAL + dx + PART] = part
            # a mask's defect under the code is covered by it: not there to be found
            printed = stamp(part, codes) if "ground_truth" not in path.parts else np.where(region_mask(part.shape[:2], CODE), 0, part)
            for kind, image in (("plain", part), ("belt", frame), ("stamped", printed), ("turned", lying)):
                (out / kind / path).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(out / kind / path), image)
            if rel.parts[:2] == ("test", "good") and path == rel:  # the same good parts, their codes half printed
                x, y, w, h = CODE
                printed[y + 2 : y + h - 2, x + w // 2 : x + w - 2] = 220
                (out / "smudged" / rel.parent).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(out / "smudged" / rel), printed)
    (out / "offsets.json").write_text(json.dumps(offsets))
    for mask in (out / "stamped/ground_truth").rglob("*_mask.png"):  # a defect the code covers whole is not there
        if not cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE).any():
            mask.unlink()
            (out / "stamped/test" / mask.parent.name / mask.name.replace("_mask", "")).unlink()
    for kind in (d for d in (out / "stamped/test").iterdir() if d.name != "good"):  # smudged/: a test set of its own
        shutil.copytree(kind, out / "smudged/test" / kind.name, dirs_exist_ok=True)
        if (out / "stamped/ground_truth" / kind.name).is_dir():
            shutil.copytree(out / "stamped/ground_truth" / kind.name, out / "smudged/ground_truth" / kind.name, dirs_exist_ok=True)
    files = {kind: sum(1 for _ in (out / kind).rglob("*.png")) for kind in ("plain", "belt", "turned", "stamped", "smudged")}
    print(f"{len(offsets)} images (and their masks) from {src} -> {out}: "
          + ", ".join(f"{kind}/ {n} files" for kind, n in files.items()) + "; offsets.json")


def check(out: Path, kind: str = "belt") -> None:
    from model.framing import Framing, reference_paths
    from model.images import read_image

    if not (out / "offsets.json").is_file() or not (out / kind / "train/good").is_dir():
        refuse(f"{out}: not written by `make` (no offsets.json or {kind}/train/good); run `python docs/belt.py make SRC {out}` first")
    train = sorted((out / kind / "train/good").iterdir())
    refs = reference_paths(train)  # as `fit` takes them
    framing = Framing.fitted(ROI, MARGIN, lambda: ((read_image(p), str(p)) for p in refs), turn=TURN + 2 if kind == "turned" else 0)
    errors, turns, weak = [], [], 0
    for name, (dx, dy, angle) in json.loads((out / "offsets.json").read_text()).items():
        box, warning = framing.located(read_image(out / kind / name))
        errors.append(max(abs(box[0] - NOMINAL - dx), abs(box[1] - NOMINAL - dy)))
        turns.append(abs((box[4] if len(box) > 4 else 0.0) - (angle if kind == "turned" else 0.0)))
        weak += warning is not None
    e, t = np.array(errors), np.array(turns)
    print(f"{len(e)} images: found to the pixel {np.mean(e == 0):.3f}, within 1 px {np.mean(e <= 1):.3f}, within 2 px "
          f"{np.mean(e <= 2):.3f}, more than 4 px off {np.mean(e > 4):.3f}; weak matches {weak}"
          + (f"; angle within 0.5 degrees {np.mean(t <= 0.5):.3f}, within 1 {np.mean(t <= 1):.3f}, median error {np.median(t):.2f}"
             if kind == "turned" else ""))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="action", required=True)
    m = sub.add_parser("make")
    m.add_argument("src", type=Path)
    m.add_argument("out", type=Path)
    c = sub.add_parser("check")
    c.add_argument("out", type=Path)
    c.add_argument("--turned", action="store_true", help="the turned parts (turned/), found with --turn TURN + 2")
    args = p.parse_args()
    make(args.src, args.out) if args.action == "make" else check(args.out, "turned" if args.turned else "belt")
