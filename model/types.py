"""The defect-type head: region-pooled backbone features -> probabilities of K known types + `unknown`.

All plain tensor ops with fitted state in buffers, so it exports inside the one graph:

1. region weights over the patch grid: `mix * softmax(sharpness * map) + (1 - mix) * uniform`, where the
   map is the anomaly map pooled to the grid. `mix = 0` pools the whole image (no normal reference).
2. features: region-weighted mean and std of the patch embeddings, next to the whole image's mean and
   std (4 * D values); standardised and L2-normalised -> z.
3. logits = z @ W^T + b (W, b fitted on labelled examples: logistic regression or class prototypes),
   plus, with a CLIP backbone, `text_mix * text_scale * cos(image embedding, prompt-ensemble embedding)`.
4. open set: u = -(largest logit), i.e. how far the image is from every type's (learnt) prototype;
   p_unknown = sigmoid((u - threshold) / spread). The threshold is a quantile of the labelled examples'
   out-of-fold u (each scored by a classifier fitted without it), so about `unknown_rate` of known
   defects come back `unknown`. (Measured on NEU with one type held out, the largest logit separates
   unseen types better than the nearest-example cosine distance: AUROC 0.95 vs 0.86 at 10 shots.)

Output [B, K + 1]: known types' softmax scaled by (1 - p_unknown), then p_unknown; rows sum to 1.
A type is reported `unknown` when p_unknown >= 0.5 (the decision may use another cut-off: p_unknown is
monotone in u, so a cut-off of c is the threshold `threshold + spread * logit(c)` on u).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DISABLED = 1e6  # an unknown-threshold no score reaches: `unknown` switched off


def weighted_stats(emb: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """emb [B, D, N], weights [B, N] summing to 1 -> [B, 2D]: weighted mean and std per channel."""
    mean = (emb * w.unsqueeze(1)).sum(dim=2)
    dev = emb - mean.unsqueeze(2)  # centred first: E[x^2] - E[x]^2 loses precision in float32
    return torch.cat([mean, (dev * dev * w.unsqueeze(1)).sum(dim=2).clamp_min(1e-12).sqrt()], dim=1)


def region_weights(amap: torch.Tensor, grid: tuple[int, int], mix: torch.Tensor, sharpness: torch.Tensor) -> torch.Tensor:
    """Anomaly map [B, H, W] -> pooling weights [B, gh * gw]: softmax of the map blended with uniform."""
    a = F.adaptive_avg_pool2d(amap.unsqueeze(1), grid).flatten(1)
    n = a.shape[1]
    return mix * torch.softmax(a * sharpness, dim=1) + (1.0 - mix) / n


class TypeHead(nn.Module):
    """See the module docstring. `dim`: patch-embedding channels D; `n_classes`: K known types;
    `text_dim`/`token_dim`: CLIP joint-space and token widths (0 without a CLIP text branch)."""

    def __init__(self, dim: int, n_classes: int, text_dim: int = 0, token_dim: int = 0) -> None:
        super().__init__()
        fdim = 4 * dim
        self.register_buffer("mix", torch.tensor(0.0))  # 1: pool where the map is high; 0: whole image
        self.register_buffer("sharpness", torch.tensor(1.0))
        self.register_buffer("f_mean", torch.zeros(fdim))
        self.register_buffer("f_scale", torch.ones(fdim))
        self.register_buffer("weight", torch.zeros(n_classes, fdim))
        self.register_buffer("bias", torch.zeros(n_classes))
        self.register_buffer("unknown", torch.tensor([DISABLED, 1.0]))  # threshold on -(max logit), spread
        self.has_text = text_dim > 0
        if self.has_text:
            self.register_buffer("text_weights", torch.zeros(n_classes, text_dim))
            self.register_buffer("text_mix", torch.tensor([0.0, 100.0]))  # weight of the text logits, CLIP logit scale
            self.register_buffer("ln_weight", torch.ones(token_dim))
            self.register_buffer("ln_bias", torch.zeros(token_dim))
            self.register_buffer("proj", torch.zeros(token_dim, text_dim))

    # -- pieces, also used when fitting ----------------------------------------------------------------
    def pooled(self, emb: torch.Tensor, amap: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Raw features [B, 4D]: region stats (map-weighted, or `weights` [B, N] when given) + whole-image stats."""
        b, d = emb.shape[:2]
        grid = tuple(emb.shape[-2:])
        flat = emb.reshape(b, d, -1)
        w = region_weights(amap, grid, self.mix, self.sharpness) if weights is None else weights
        uniform = torch.full_like(w, 1.0 / w.shape[1])
        return torch.cat([weighted_stats(flat, w), weighted_stats(flat, uniform)], dim=1)

    def normalise(self, f: torch.Tensor) -> torch.Tensor:
        """Raw features -> z: standardised, unit length."""
        x = (f - self.f_mean) / self.f_scale
        return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def image_embedding(self, tokens: torch.Tensor, amap: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """CLIP: region-pooled tokens [B, C, h, w] -> unit vectors in the joint image-text space [B, E]."""
        b, c = tokens.shape[:2]
        t = tokens.reshape(b, c, -1).transpose(1, 2)
        t = F.layer_norm(t, (c,), self.ln_weight, self.ln_bias)
        w = region_weights(amap, tuple(tokens.shape[-2:]), self.mix, self.sharpness) if weights is None else weights
        e = (t * w.unsqueeze(2)).sum(dim=1) @ self.proj
        return e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def logits(self, z: torch.Tensor, image_emb: torch.Tensor | None = None) -> torch.Tensor:
        out = z @ self.weight.t() + self.bias
        if self.has_text and image_emb is not None:
            out = out + self.text_mix[0] * self.text_mix[1] * (image_emb @ self.text_weights.t())
        return out

    def probs(self, z: torch.Tensor, image_emb: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.logits(z, image_emb)
        p_unk = torch.sigmoid((-logits.amax(dim=1, keepdim=True) - self.unknown[0]) / self.unknown[1])
        return torch.cat([torch.softmax(logits, dim=1) * (1.0 - p_unk), p_unk], dim=1)

    def forward(self, emb: torch.Tensor, amap: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Patch embeddings [B, D, gh, gw], anomaly map [B, H, W] (CLIP: last tokens [B, C, h, w]) -> [B, K + 1]."""
        z = self.normalise(self.pooled(emb, amap))
        image_emb = self.image_embedding(tokens, amap) if (self.has_text and tokens is not None) else None
        return self.probs(z, image_emb)
