"""Parts on a belt, from an MVTec-AD-layout dataset: how `fit --roi --locate` copes with parts that stop a little
differently each time (README, "Fit your own station").

    python docs/belt.py make ../shared/data/magnetic_tile /tmp/belt   # /tmp/belt/plain, /tmp/belt/belt, offsets.json
    python docs/belt.py check /tmp/belt                                # how exactly --locate finds each part

`make` resizes every image (and mask) to PART px; `plain/` keeps them so, `belt/` places each at NOMINAL shifted by up to
JITTER px (the first training image unshifted: it is the reference) in a FRAME px frame of dark belt noise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

PART, FRAME, JITTER, NOMINAL = 160, 240, 20, 40
ROI, MARGIN = (NOMINAL, NOMINAL, PART, PART), 24


def make(src: Path, out: Path) -> None:
    rng = np.random.default_rng(0)
    first = sorted(p for p in (src / "train/good").iterdir() if p.is_file())[0]
    offsets = {}
    for img in sorted(p for p in src.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".bmp") and "ground_truth" not in p.parts):
        rel = img.relative_to(src).with_suffix(".png")
        dx, dy = (0, 0) if img == first else (int(v) for v in rng.integers(-JITTER, JITTER + 1, 2))
        offsets[str(rel)] = (dx, dy)
        belt = rng.integers(10, 50, (FRAME, FRAME, 3), dtype=np.uint8)
        pairs = [(rel, cv2.resize(cv2.imread(str(img)), (PART, PART), interpolation=cv2.INTER_AREA), belt)]
        mask = src / "ground_truth" / rel.parent.name / f"{img.stem}_mask.png"
        if rel.parts[0] == "test" and mask.is_file():
            pairs.append((Path("ground_truth", rel.parent.name, mask.name),
                          cv2.resize(cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE), (PART, PART), interpolation=cv2.INTER_NEAREST),
                          np.zeros((FRAME, FRAME), np.uint8)))
        for path, part, frame in pairs:
            frame[NOMINAL + dy : NOMINAL + dy + PART, NOMINAL + dx : NOMINAL + dx + PART] = part
            for kind, image in (("plain", part), ("belt", frame)):
                (out / kind / path).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(out / kind / path), image)
    (out / "offsets.json").write_text(json.dumps(offsets))


def check(out: Path) -> None:
    from model.framing import Framing, reference_paths
    from model.images import read_image

    train = sorted((out / "belt/train/good").iterdir())
    refs = reference_paths(train)  # as `fit` takes them
    framing = Framing.fitted(ROI, MARGIN, lambda: ((read_image(p), str(p)) for p in refs))
    errors, weak = [], 0
    for name, (dx, dy) in json.loads((out / "offsets.json").read_text()).items():
        box, warning = framing.located(read_image(out / "belt" / name))
        errors.append(max(abs(box[0] - NOMINAL - dx), abs(box[1] - NOMINAL - dy)))
        weak += warning is not None
    e = np.array(errors)
    print(f"{len(e)} images: found to the pixel {np.mean(e == 0):.3f}, within 1 px {np.mean(e <= 1):.3f}, within 2 px "
          f"{np.mean(e <= 2):.3f}, more than 4 px off {np.mean(e > 4):.3f}; weak matches {weak}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="action", required=True)
    m = sub.add_parser("make")
    m.add_argument("src", type=Path)
    m.add_argument("out", type=Path)
    sub.add_parser("check").add_argument("out", type=Path)
    args = p.parse_args()
    make(args.src, args.out) if args.action == "make" else check(args.out)
