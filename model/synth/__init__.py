"""Synthetic defects with exact pixel masks, made on good images."""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np

from model.errors import InspectorError
from model.synth.blend import foreground_mask
from model.synth.defects import DEFECTS

DEFECT_TYPES = tuple(DEFECTS)
NEEDS_DONOR = frozenset({"transplant"})
# Types that replace a whole region: every pixel in it is defective, also where the new surface happens to
# match the old one's value, so the mask is the region, not the pixels that changed.
REGION_TYPES = frozenset({"transplant"})
SEVERITY_FREE = frozenset({"transplant"})  # drawn over its full range whatever the severity (see defects.transplant)


def check_types(types: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    if not types:
        return DEFECT_TYPES
    unknown = [t for t in types if t not in DEFECTS]
    if unknown:
        raise InspectorError(f"defect type {unknown[0]!r} is unknown: choose from {', '.join(DEFECT_TYPES)}")
    return tuple(types)


SEVERITY = (0.3, 0.9)


def draw(seed: int, i: int, n_sources: int, severity: tuple[float, float] = SEVERITY) -> tuple[np.random.Generator, int, float]:
    """Image i of a seeded set: (its generator, which good image it is made on, its severity).

    The same (seed, i) gives the same choices wherever a set is made (`inspector synth`, `fit --synth`).
    """
    rng = np.random.default_rng([seed, i])
    return rng, int(rng.integers(n_sources)), float(rng.uniform(*severity))


def donor_index(n_sources: int, pick: int, defect_type: str, rng: np.random.Generator) -> int | None:
    """Which other good image a `transplant` on image `pick` takes its surface from; None for other types or one image."""
    if defect_type not in NEEDS_DONOR or n_sources < 2:
        return None
    return (pick + 1 + int(rng.integers(n_sources - 1))) % n_sources


def is_grey(rgb: np.ndarray) -> bool:
    """A grey image replicated to RGB (as images are read), not a colour one."""
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


CHANGED = 2  # grey levels: a pixel changed by more is part of the defect (less is rounding and noise, invisible)
VISIBLE_REGION = 0.5  # a region type's draw is redrawn where fewer of its pixels changed (a flat part, a donor just like it)


def synthesize(rgb: np.ndarray, defect_type: str, rng: np.random.Generator, severity: float = 0.5,
               foreground: np.ndarray | None = None, min_pixels: int = 6,
               donor: np.ndarray | None = None, exact: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One defect of `defect_type` on a good RGB image -> (defect image, bool mask).

    exact (a dataset's ground truth, `inspector synth`): the mask is every pixel changed by more than CHANGED grey
    levels (and, for REGION_TYPES, the whole replaced region), and no pixel outside it differs from `rgb` at all.
    exact=False (what `fit --synth` was tuned on): the defect's core, where its soft shape passes 0.25 (0.5 for
    REGION_TYPES); its faint rim, changed by up to ~40 grey levels, lies outside the mask and stays in the image.
    donor: another good image, the source of a `transplant` (other types ignore it).
    """
    fn = partial(DEFECTS[defect_type], donor=donor) if defect_type in NEEDS_DONOR else DEFECTS[defect_type]
    fg = foreground_mask(rgb) if foreground is None else foreground
    grey = is_grey(rgb)
    region = defect_type in REGION_TYPES
    for _ in range(8):
        out, soft = fn(rgb, fg, rng, float(np.clip(severity, 0.05, 1.0)))
        if grey:  # a grey camera's defects are grey: chips' and frays' noise was drawn per channel, a colour no real defect has
            out = np.repeat(np.round(out.mean(axis=2, keepdims=True)), 3, axis=2).astype(rgb.dtype)
        changed = np.abs(out.astype(np.int16) - rgb.astype(np.int16)).max(axis=2) > CHANGED
        core = soft > (0.5 if region else 0.25)
        mask = core if region else core & changed
        if exact:  # the soft rim (a stain's blur, a scratch's anti-aliasing, a seam) changed pixels too: they are defect
            mask = mask | changed
            if region:  # a seam's pixels changed where donor and part differ: closed into one region, not a speckled rim
                closed = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)) > 0
                mask |= closed & (soft > 0)
            out = np.where(mask[..., None], out, rgb)  # and what changed by CHANGED levels or less outside is undone
        # a replaced region that looks like what it replaced is no defect, whatever its mask says
        unseen = region and core.any() and changed[core].mean() < VISIBLE_REGION
        if mask.sum() >= min_pixels and not unseen:
            return out, mask
    return out, mask  # an unlucky draw: caller sees a (nearly) empty mask
