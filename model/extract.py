"""Batched image loading and forward passes, shared by fitting and evaluation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from model.framing import Framing, Roi
from model.images import preprocess, read_image


def load_batches(
    paths: Sequence[Path], size: tuple[int, int], batch_size: int = 16, workers: int = 4, framing: Framing | None = None,
    edge: bool = False,
) -> Iterator[tuple[list[int], np.ndarray, list[np.ndarray], list[tuple[Roi | None, str | None]]]]:
    """Yield (indices, preprocessed batch [B, 3, h, w] of each image's region of interest under `framing`, whole RGB
    images, each image's (region, warning) as `Framing.located` gave them, with `edge` as inspection asks), decoding in
    threads."""

    def load(p: Path) -> tuple[np.ndarray, np.ndarray, tuple[Roi | None, str | None]]:
        rgb = read_image(p)
        located = framing.located(rgb, str(p), edge=edge) if framing else (None, None)
        return preprocess(rgb, size, located[0], str(p)), rgb, located

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(paths), batch_size):
            idx = list(range(start, min(start + batch_size, len(paths))))
            loaded = list(pool.map(load, [paths[i] for i in idx]))
            yield idx, np.stack([x for x, _, _ in loaded]), [rgb for _, rgb, _ in loaded], [at for _, _, at in loaded]

