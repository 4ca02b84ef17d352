"""Greedy k-centre coreset selection (PatchCore), on a seeded random projection."""

from __future__ import annotations

from collections.abc import Callable

import torch


@torch.no_grad()
def greedy_coreset(
    features: torch.Tensor,
    n: int,
    proj_dim: int = 64,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Indices of `n` rows of `features` [N, D] that cover the rest: each step adds the row farthest
    from those already chosen. Distances are taken after a Johnson-Lindenstrauss projection to
    `proj_dim` dimensions; only an [N] vector of running minima is kept, never an N x N matrix.
    """
    total = features.shape[0]
    if n >= total:  # every row: done at once, and said so (fit's bar stood at 0 of them)
        if progress is not None:
            progress(n)
        return torch.arange(total)
    gen = torch.Generator().manual_seed(seed)
    x = features.float()
    if x.shape[1] > proj_dim:
        proj = torch.randn(x.shape[1], proj_dim, generator=gen) / proj_dim**0.5
        x = x @ proj
    x = x.contiguous()
    sq = (x * x).sum(dim=1)
    chosen = torch.empty(n, dtype=torch.long)
    idx = int(torch.randint(total, (1,), generator=gen))
    min_d = torch.full((total,), float("inf"))
    for i in range(n):
        chosen[i] = idx
        c = x[idx]
        d = torch.addmv(sq + sq[idx], x, c, alpha=-2.0)
        torch.minimum(min_d, d, out=min_d)
        idx = int(torch.argmax(min_d))
        if progress is not None and (i + 1) % 256 == 0:
            progress(256)
    if progress is not None:
        progress(n % 256)
    return chosen
