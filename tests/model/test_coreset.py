"""Greedy k-centre coreset: spreads over the data, follows the farthest-point rule, and fit keeps the ratio."""

from __future__ import annotations

import json

import pytest
import torch

from model.coreset import greedy_coreset


def clusters(n_per: int = 40, dim: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(6, dim, generator=g) * 100.0
    labels = torch.arange(6).repeat_interleave(n_per)
    return centres[labels] + torch.randn(labels.numel(), dim, generator=g), labels


def test_one_point_per_cluster():
    x, labels = clusters()
    chosen = greedy_coreset(x, 6)
    assert sorted(labels[chosen].tolist()) == list(range(6))


def test_each_pick_is_the_farthest_point_from_those_before():
    x, _ = clusters(n_per=25, dim=3)  # dim <= proj_dim: no projection, so exact distances apply
    chosen = greedy_coreset(x, 20, seed=3)
    assert chosen.unique().numel() == 20
    d = torch.cdist(x.double(), x.double())
    for i in range(1, 20):
        cover = d[:, chosen[:i]].amin(dim=1)  # each point's distance to the picks so far
        assert cover[chosen[i]] == pytest.approx(float(cover.max()), rel=1e-6)


def test_high_dimensional_features_are_projected_and_still_spread():
    x, labels = clusters(n_per=30, dim=300, seed=1)
    chosen = greedy_coreset(x, 6, proj_dim=32)
    assert sorted(labels[chosen].tolist()) == list(range(6))
    torch.testing.assert_close(chosen, greedy_coreset(x, 6, proj_dim=32))  # seeded: reproducible


def test_progress_and_small_totals():
    x, _ = clusters(n_per=100)
    seen = []
    greedy_coreset(x, 300, progress=seen.append)
    assert sum(seen) == 300
    torch.testing.assert_close(greedy_coreset(x[:5], 10), torch.arange(5))


def test_fit_keeps_the_configured_ratio(tiny_ckpt):
    from safetensors import safe_open

    m = json.loads((tiny_ckpt / "manifest.json").read_text())
    training, ratio = m["training"], m["options"]["coreset_ratio"]
    assert ratio == 0.25
    assert training["bank_size"] == round(ratio * training["patches"]) == m["net"]["bank_size"]
    with safe_open(str(tiny_ckpt / "model.safetensors"), "pt") as f:
        assert f.get_slice("head.bank").get_shape()[0] == training["bank_size"]
