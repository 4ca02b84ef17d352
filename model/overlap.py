"""Test images that are other captures of training images ("twins"), which make metrics look better than a
new part would score.

A public dataset's split, or a QA engineer's own, can put two photographs of one part on both sides: the
same tile under another light, a second frame from the line camera. The model has then seen that part, and
its good test images pass more easily than new parts will; and a defect image whose part is among the
good training images points at a mislabelled or contaminated training set. An image counts as a twin when
its nearest training image is clearly nearer than its `TWIN_RANK`-th nearest (nearest < `TWIN_RATIO` x
that one, a ratio test as in Lowe's matching): captures of one part are far closer to each other than any
two different parts, whatever the scale of the distances, and up to `TWIN_RANK` - 1 captures of the part
may be in the training set. Images are compared by the default backbone's features, contrast-standardised
and averaged over an 8 x 8 grid of cells, place by place, so this works the same for any model evaluated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.backbones import DEFAULT_BACKBONE, build_backbone
from model.extract import load_batches
from model.framing import Framing
from model.net import standardize
from model.progress import BarFactory, silent

TWIN_RATIO = 0.75
TWIN_RANK = 4
CELLS = 8
BLOCK_FLOATS = 2**24  # distances computed at once in _distances (64 MB)
SIZE = (256, 256)


@torch.no_grad()
def descriptors(paths: list[Path], backbone: torch.nn.Module, progress: BarFactory = silent,
                framing: Framing | None = None) -> list[torch.Tensor]:
    """Per image (its region of interest, when given) and backbone level: features averaged over CELLS x CELLS cells
    -> [N, C, CELLS, CELLS] per level."""
    levels: list[list[torch.Tensor]] = []
    bar = progress("overlap", len(paths))
    for _, batch, _, _ in load_batches(paths, SIZE, batch_size=16, framing=framing):
        levels.append(cell_means(backbone(standardize(torch.from_numpy(batch)))))
        bar.update(len(batch))
    bar.close()
    return [torch.cat(parts) for parts in zip(*levels)]


def cell_means(feats: list[torch.Tensor]) -> list[torch.Tensor]:
    """Backbone maps -> each level averaged over CELLS x CELLS cells (an image's descriptor, level by level)."""
    return [F.adaptive_avg_pool2d(f, CELLS) for f in feats]


def _distances(train: list[torch.Tensor], other: list[torch.Tensor]) -> torch.Tensor:
    """[N_other, N_train] distances between `descriptors`: each level scaled by the training images' total
    variance there (so every level counts alike), then the mean over cells of the same-place distance."""
    scales = [1.0 / t.var(dim=0).sum().clamp_min(1e-12).sqrt() for t in train]
    a = torch.cat([t * s for t, s in zip(train, scales)], dim=1).flatten(2).permute(2, 0, 1)  # [cells, N, C]
    b = torch.cat([t * s for t, s in zip(other, scales)], dim=1).flatten(2).permute(2, 0, 1)
    # a block of `other` rows at a time: all at once held [cells, N_other, N_train] (12 GB for 5,000 images)
    rows = max(1, BLOCK_FLOATS // (a.shape[0] * max(a.shape[1], 1)))
    return torch.cat([torch.cdist(b[:, r : r + rows], a, compute_mode="donot_use_mm_for_euclid_dist").mean(dim=0)
                      for r in range(0, b.shape[1], rows)] or [torch.empty(0, a.shape[1])])


def twins(train: list[torch.Tensor], test: list[torch.Tensor], ratio: float = TWIN_RATIO, rank: int = TWIN_RANK) -> np.ndarray:
    """For each test image the index of its training twin, or -1 [N_test], from `descriptors` of both sets."""
    found = np.full(test[0].shape[0], -1)
    if train[0].shape[0] < rank:
        return found
    near = _distances(train, test).topk(rank, dim=1, largest=False)
    hit = (near.values[:, 0] < ratio * near.values[:, -1]).numpy()
    found[hit] = near.indices[:, 0].numpy()[hit]
    return found


def part_groups(images: list[torch.Tensor], ratio: float = TWIN_RATIO, rank: int = TWIN_RANK) -> np.ndarray:
    """A part id per image [N], from `descriptors` of one set: an image and each of its `rank` - 1 nearest
    others that is nearer than `ratio` x its `rank`-th nearest are captures of one part (joined transitively)."""
    n = images[0].shape[0]
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = i = parent[parent[i]]
        return i

    if n > rank:
        d = _distances(images, images)
        d.fill_diagonal_(float("inf"))
        near = d.topk(rank, dim=1, largest=False)
        for i, j in (near.values[:, : rank - 1] < ratio * near.values[:, -1:]).nonzero().tolist():
            parent[root(i)] = root(int(near.indices[i, j]))
    return np.array([root(i) for i in range(n)])


def describe(paths: list[Path], progress: BarFactory = silent, framing: Framing | None = None) -> list[torch.Tensor]:
    """`descriptors` by the default backbone, whatever model is being evaluated (of the part of each image it sees)."""
    return descriptors(paths, build_backbone(DEFAULT_BACKBONE).eval(), progress, framing)


def find_parts(paths: list[Path], progress: BarFactory = silent, framing: Framing | None = None) -> np.ndarray:
    """A part id per image [N]: images that are captures of one part share it (see `part_groups`)."""
    return part_groups(describe(list(paths), progress, framing))
