"""A small conditional rectified-flow (flow-matching) generator of patch features.

Trained on defect patch embeddings labelled by defect type; sampling integrates the learnt velocity field
from Gaussian noise to new defect features of a chosen type. Features are standardised per dimension
before training and mapped back after sampling.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _time_embedding(t: torch.Tensor, dim: int = 32) -> torch.Tensor:
    freqs = torch.exp(torch.arange(dim // 2, dtype=torch.float32) * (-math.log(1000.0) / (dim // 2)))
    angles = t.unsqueeze(1) * 1000.0 * freqs.unsqueeze(0)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class VelocityNet(nn.Module):
    """v(x_t, t, type): an MLP with time and type embeddings."""

    def __init__(self, dim: int, n_types: int, hidden: int = 512) -> None:
        super().__init__()
        self.types = nn.Embedding(max(n_types, 1), 32)
        self.net = nn.Sequential(
            nn.Linear(dim + 64, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, dim),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, _time_embedding(t), self.types(label)], dim=1))


class FeatureFlow:
    """Fit with `train(features, labels)`, then `sample(n, label)`."""

    def __init__(self, dim: int, n_types: int, hidden: int = 512, seed: int = 0) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.model = VelocityNet(dim, n_types, hidden)
        self.mean = torch.zeros(dim)
        self.std = torch.ones(dim)

    def train(self, x: torch.Tensor, labels: torch.Tensor, steps: int = 2000, batch: int = 256, lr: float = 1e-3) -> list[float]:
        x = x.float()
        self.mean, self.std = x.mean(0), x.std(0).clamp_min(1e-4)
        z = (x - self.mean) / self.std
        opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        losses = []
        self.model.train()
        with torch.enable_grad():
            for _ in range(steps):
                idx = torch.randint(0, z.shape[0], (batch,), generator=self.gen)
                x1, y = z[idx], labels[idx]
                x0 = torch.randn(x1.shape, generator=self.gen)
                t = torch.rand(batch, generator=self.gen)
                xt = (1.0 - t[:, None]) * x0 + t[:, None] * x1
                loss = ((self.model(xt, t, y) - (x1 - x0)) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
        self.model.eval()
        return losses

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor, steps: int = 32) -> torch.Tensor:
        """n new features for the given type labels [n], by Euler integration of the flow from t=0 to 1."""
        x = torch.randn((n, self.mean.numel()), generator=self.gen)
        dt = 1.0 / steps
        for i in range(steps):
            t = torch.full((n,), i * dt)
            x = x + dt * self.model(x, t, labels)
        return x * self.std + self.mean
