"""The coreset's defaults (which rows every bank keeps) and its progress reports."""

from __future__ import annotations

import torch

from model.coreset import greedy_coreset


def _coreset_data(n=300, dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g) * 10.0


def test_coreset_defaults_are_64_dims_and_seed_0():
    x = _coreset_data(200, dim=100, seed=1)
    torch.testing.assert_close(greedy_coreset(x, 12), greedy_coreset(x, 12, proj_dim=64, seed=0))
    assert not torch.equal(greedy_coreset(x, 12), greedy_coreset(x, 12, proj_dim=63))
    assert not torch.equal(greedy_coreset(x, 12), greedy_coreset(x, 12, proj_dim=65))
    assert not torch.equal(greedy_coreset(x, 12), greedy_coreset(x, 12, seed=1))


def test_coreset_progress_every_256_and_none_without_callback():
    x = _coreset_data(600)
    for n, expected in ((255, [255]), (256, [256, 0]), (513, [256, 256, 1])):
        seen = []
        greedy_coreset(x, n, progress=seen.append)
        assert seen == expected  # every pick reported once
    assert greedy_coreset(x, 300).unique().numel() == 300  # no callback, more than 256 picks
    torch.testing.assert_close(greedy_coreset(x[:7], 7), torch.arange(7))  # n == total: everything, in order
