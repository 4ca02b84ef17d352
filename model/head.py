"""The anomaly head, two branches fused into one score, all plain tensor ops with fitted state in buffers
(so the whole graph exports to ONNX/TensorRT):

- patch branch (PatchCore): locally averaged multi-level patch embeddings -> mean Euclidean distance to the
  `neighbours` nearest normal patches in a coreset memory bank -> anomaly map (upsampled, Gaussian-smoothed);
  more than one neighbour keeps a patch that happens to lie near one stray bank row from reading as normal;
- global branch: per-channel mean and std of the deepest levels -> Mahalanobis distance to the normal
  images' distribution (shrunk covariance), which catches large, diffuse defects patches miss.

Each branch is standardised by its own out-of-sample scores on good images, then the image score is
`(1 - w) * max(patch map) + w * global`. The map is returned in the patch branch's standardised units.

Optionally a third, learnt branch trained on generated defects (see model/defect_learning.py), either a
per-patch classifier or a small encoder-decoder that sees the whole image (`ContextSegmenter`), is blended
into the patch map before the max: `seg_norm` holds its standardisation, the blend weight and the
re-standardisation of the blended map. With `seg_gate` only the learnt map's excess over what most good
pixels show is blended in, so where it has nothing to say (a thin crack it never learnt) it adds no noise.

With `position_norm` the patch branch's *score* is taken from its own map instead: each patch distance is
first standardised by the good images' distances at the same grid cell (`pos_stats`), and the maximum of
that map by `pos_norm`. Parts framed the same way each time have places, such as their edges, where even
good parts look unusual; there a distance counts for less than the same distance in a quiet place. Where
framing varies, the cells' statistics even out and the score is the plain maximum again. The returned
map is the raw patch distances' (standardised by `norm`), unless `position_map` (below).

With `references` > 0 the patch branch compares each image with its own closest normal images instead of
a coreset bank (as SPADE does): the global branch's whitened statistics (`ref_key`) pick the `ref_k`
nearest of the stored training images, and each patch is matched only against their patches within
`ref_radius` grid cells of the same place (`ref_emb`, FP16). A thin crack is then judged against the
same spot on similar parts, not against the nearest patch from anywhere.

With `peers` > 0 the fused score is then offset by what good parts like this one score: the mean
out-of-sample score (`peer_score`) of the `peers` training images whose pooled statistics, standardised
per dimension (`peer_key`, `peer_stats`), are nearest. An unusual but good kind of part (another shape,
another finish) scores high against the whole set, and so do the training images of its kind, so it is
judged against them; a defect on a common kind of part keeps its margin. With `peer_position` as well,
the position normalisation's cell statistics come from those same training images' out-of-sample patch
distances (`peer_dist`) instead of from every training image: places where good parts of its kind always
differ (edges, chamfers, which land in other cells for another shape) count for less. With `position_map`
too, the returned map is that positional map (standardised by `pos_norm`, then blended with the learnt
branch, if any), so the map shows where the score comes from. Only with peers: cell statistics of every
training image, which mixes kinds of part, located defects less well than the raw map on magnetic tiles.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BANK_CHUNK = 1024  # bank rows per matmul: small enough that the [patches x rows] distance block stays in cache
POSITION_PRIOR = 8.0  # position statistics are shrunk towards the whole grid as if this many more images showed it


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(4.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def smoothing_matrix(cells: int, pixels: int, kernel: torch.Tensor) -> torch.Tensor:
    """[pixels, cells]: bilinear upsampling (align_corners=False) of a line of cells to pixels, then the Gaussian
    `kernel` with replicated edges, as one linear map (made in float64 from the same ops, so only rounding differs)."""
    eye = torch.eye(cells, dtype=torch.float64, device=kernel.device).view(cells, 1, 1, cells)  # one line per cell
    up = F.interpolate(eye, size=(1, pixels), mode="bilinear", align_corners=False)
    r = kernel.numel() // 2
    smooth = F.conv2d(F.pad(up, (r, r, 0, 0), mode="replicate"), kernel.double().view(1, 1, 1, -1))
    return smooth.view(cells, pixels).t().float().contiguous()


class AnomalyHead(nn.Module):
    """Memory-bank patch head plus global Gaussian head; see the module docstring."""

    def __init__(
        self,
        channels: tuple[int, ...],
        input_size: tuple[int, int],
        bank_size: int,
        grid_stride: int = 8,
        sigma: float = 4.0,
        global_levels: int = 2,
        global_weight: float = 0.5,
        seg_hidden: int = 0,
        seg_context: bool = False,
        seg_gate: bool = False,
        position_norm: bool = False,
        position_map: bool = False,
        references: int = 0,
        ref_k: int = 10,
        ref_radius: int = 1,
        peers: int = 0,
        peer_images: int = 0,
        peer_position: bool = False,
        neighbours: int = 1,
    ) -> None:
        super().__init__()
        self.input_size = tuple(input_size)
        self.grid = (input_size[0] // grid_stride, input_size[1] // grid_stride)
        self.global_levels = min(global_levels, len(channels))
        self.global_weight = float(global_weight)
        self.neighbours = int(neighbours)
        dim = sum(channels)
        gdim = 2 * sum(channels[len(channels) - self.global_levels :])
        self.register_buffer("level_scale", torch.ones(dim))
        self.register_buffer("bank", torch.zeros(bank_size, dim))
        self.register_buffer("bank_sq", torch.zeros(bank_size))
        self.register_buffer("blur", gaussian_kernel1d(sigma))
        # to_map's upsample-and-blur per axis, for the grid and the whole-image learnt branch's half grid (derived
        # from `blur`, so not saved)
        for axis in (0, 1):
            for cells in {self.grid[axis], math.ceil(self.grid[axis] / 2)}:
                self.register_buffer(f"_smoothing{axis}_{cells}", self.smoothing(axis, cells), persistent=False)
        self.register_buffer("g_mean", torch.zeros(gdim))
        self.register_buffer("g_whiten", torch.eye(gdim))
        # standardisation of each branch: (raw - loc) / scale
        self.register_buffer("norm", torch.tensor([0.0, 1.0, 0.0, 1.0]))
        self.seg: nn.Module | None = None
        if seg_hidden > 0:
            self.seg = ContextSegmenter(dim, seg_hidden) if seg_context else seg_classifier(dim, seg_hidden)
        # learnt branch: (logit - loc) / scale (with seg_gate: its positive part), blend weight, then
        # (blend - loc) / scale of the blended map
        self.register_buffer("seg_norm", torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0]))
        self.seg_gate = seg_gate
        self.position_norm = position_norm
        if position_norm:
            # per grid cell (distance - loc) / scale [2, gh, gw]; then (max of that map - loc) / scale
            self.register_buffer("pos_stats", torch.stack([torch.zeros(self.grid), torch.ones(self.grid)]))
            self.register_buffer("pos_norm", torch.tensor([0.0, 1.0]))
        self.references, self.ref_k, self.ref_radius = references, ref_k, ref_radius
        if references:
            self.register_buffer("ref_emb", torch.zeros(references, dim, *self.grid, dtype=torch.float16))
            self.register_buffer("ref_key", torch.zeros(references, gdim))
        self.peers = peers
        if peers:
            self.register_buffer("peer_key", torch.zeros(peer_images, gdim))
            self.register_buffer("peer_score", torch.zeros(peer_images))
            # per-dimension (loc, scale) of the training images' pooled statistics [2, G]
            self.register_buffer("peer_stats", torch.stack([torch.zeros(gdim), torch.ones(gdim)]))
        # [H, W]: 1 where the map counts, 0 in don't-care regions (`--ignore`; set by InspectorNet, not saved: the
        # manifest holds it)
        self.register_buffer("keep", None, persistent=False)
        self.peer_position = bool(peers and position_norm and peer_position)
        self.position_map = bool(self.peer_position and position_map)
        if self.peer_position:
            self.register_buffer("peer_dist", torch.zeros(peer_images, *self.grid))  # their out-of-sample patch distances

    # -- patch branch ------------------------------------------------------------------------------
    def embed(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Backbone maps -> patch embeddings [B, D, gh, gw], level-scaled."""
        out = []
        for f in feats:
            f = F.avg_pool2d(f, 3, stride=1, padding=1, count_include_pad=False)
            if tuple(f.shape[-2:]) != self.grid:
                if f.shape[-2] > self.grid[0]:
                    f = F.adaptive_avg_pool2d(f, self.grid)
                else:
                    f = upsample(f, self.grid)
            out.append(f)
        emb = torch.cat(out, dim=1)
        return emb * self.level_scale.view(1, -1, 1, 1)

    def patch_distances(self, emb: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings [B, D, gh, gw] -> mean Euclidean distance to the `neighbours` nearest bank patches [B, gh, gw].

        exclude: bool [bank] of rows to ignore (an image's own patches, or its part's, when fitting scores it
        out-of-sample); never set in the exported graph. Fewer rows left than `neighbours`: the mean over those.
        """
        b, d, gh, gw = emb.shape
        x = emb.permute(0, 2, 3, 1).reshape(b * gh * gw, d)
        best = None
        for start in range(0, self.bank.shape[0], BANK_CHUNK):
            # |b|^2 - 2 x.b ranks the rows as |x - b|^2 does: the patch's own |x|^2 is added to the k kept values
            # only, one pass fewer over the [patches x rows] block (not addmm: as an exported Gemm it crashes
            # onnxruntime 1.32's NchwcTransformer in CLIP FP16 graphs)
            d2 = self.bank_sq[start : start + BANK_CHUNK] - 2.0 * (x @ self.bank[start : start + BANK_CHUNK].t())
            if exclude is not None:
                d2 = d2.masked_fill(exclude[start : start + BANK_CHUNK].unsqueeze(0), float("inf"))
            d2 = _smallest(d2, self.neighbours)
            best = d2 if best is None else _smallest(torch.cat([best, d2], dim=1), self.neighbours)
        dist = (best + (x * x).sum(dim=1, keepdim=True)).clamp_min(0.0).sqrt()
        if exclude is None:
            return dist.mean(dim=1).reshape(b, gh, gw)
        kept = torch.isfinite(dist)  # no row left at all: inf, as with one neighbour
        return (dist.where(kept, 0.0).sum(dim=1) / kept.sum(dim=1)).nan_to_num(nan=math.inf).reshape(b, gh, gw)

    def reference_distances(self, emb: torch.Tensor, key: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings [B, D, gh, gw] and global keys [B, G] -> distance of each patch to the nearest patch
        within `ref_radius` cells of the same place in the `ref_k` nearest reference images [B, gh, gw].

        exclude: bool [B, references] of reference images to skip (an image's own, or its part's, when fitting
        scores it out-of-sample); never set in the exported graph.
        """
        b, d, gh, gw = emb.shape
        k, r = min(self.ref_k, self.references), self.ref_radius
        idx = nearest_rows(key, self.ref_key, k, exclude).flatten()
        refs = F.pad(self.ref_emb[idx].float(), (r, r, r, r), mode="replicate").reshape(b, k, d, gh + 2 * r, gw + 2 * r)
        # |x - c|^2 = |x|^2 + |c|^2 - 2 x.c: one product per shift, no [B, K, D, gh, gw] difference tensors
        refs_sq = (refs * refs).sum(dim=2)
        x = emb.unsqueeze(1)
        best = None
        for dy in range(2 * r + 1):
            for dx in range(2 * r + 1):
                dot = (refs[..., dy : dy + gh, dx : dx + gw] * x).sum(dim=2)
                d2 = (refs_sq[..., dy : dy + gh, dx : dx + gw] - 2.0 * dot).amin(dim=1)
                best = d2 if best is None else torch.minimum(best, d2)
        return (best + (emb * emb).sum(dim=1)).clamp_min(0.0).sqrt()

    def to_map(self, dist: torch.Tensor) -> torch.Tensor:
        """Patch distances [B, gh, gw] -> smoothed raw anomaly map [B, H, W] at the input size; in don't-care pixels
        its least value, so that nothing there is marked or scored (every map and maximum is made here)."""
        # upsampling and blur are linear and act on each axis alone: two small matrix products instead of a
        # full-size 1-channel resize and two 33-tap convolutions, which both torch and onnxruntime run slowly
        m = self.smoothing(0, dist.shape[-2]) @ dist @ self.smoothing(1, dist.shape[-1])
        if self.keep is not None:
            m = m * self.keep + m.amin(dim=(1, 2), keepdim=True) * (1.0 - self.keep)
        return m

    def smoothing(self, axis: int, cells: int) -> torch.Tensor:
        """`smoothing_matrix` of that many cells along `axis` (0: [H, cells], to multiply from the left; 1: [cells, W],
        from the right): the buffer made for the grid when there is one, else made now (another grid)."""
        made = getattr(self, f"_smoothing{axis}_{cells}", None)
        if made is not None:
            return made
        m = smoothing_matrix(cells, self.input_size[axis], self.blur)
        return m if axis == 0 else m.t().contiguous()

    def position_cells(self, dist: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
        """Patch distances [B, gh, gw] standardised per grid cell by `stats` (loc, scale) [2, gh, gw] or, one
        pair per image, [B, 2, gh, gw] (default: the fitted `pos_stats`)."""
        stats = self.pos_stats if stats is None else stats
        return (dist - stats.select(-3, 0)) / stats.select(-3, 1)

    def positional_map(self, dist: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
        """`position_cells` as a smoothed map [B, H, W]."""
        return self.to_map(self.position_cells(dist, stats))

    def standardise_bank(self, raw_map: torch.Tensor | None, pos_map: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The patch branch's raw map [B, H, W] (unused with `position_map`) and positional map (`position_norm`,
        else None) -> (the map it shows, before any learnt blend, in good images' units; its patch score [B],
        or None when that is the maximum of the blended map)."""
        patch = None if pos_map is None else (pos_map.flatten(1).amax(dim=1) - self.pos_norm[0]) / self.pos_norm[1]
        if self.position_map:  # implies position_norm, so pos_map is given
            return (pos_map - self.pos_norm[0]) / self.pos_norm[1], patch
        return (raw_map - self.norm[0]) / self.norm[1], patch

    def bank_branch(self, feats: list[torch.Tensor], emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """Backbone maps and their embeddings -> (the patch branch's standardised map and score, as
        `standardise_bank` gives them; the global key [B, G]; the peers' rows [B, peers] or None)."""
        pooled = self.pool(feats)
        key = self.global_key(pooled)
        dist = self.reference_distances(emb, key) if self.references else self.patch_distances(emb)
        rows = self.peer_rows(pooled) if self.peers else None
        pos_map = None
        if self.position_norm:
            pos_map = self.positional_map(dist, self.peer_position_stats(rows) if self.peer_position else None)
        bank, patch = self.standardise_bank(None if self.position_map else self.to_map(dist), pos_map)
        return bank, patch, key, rows

    def peer_position_stats(self, rows: torch.Tensor) -> torch.Tensor:
        """Indices [B, peers] of each image's peers -> cell statistics of their patch distances [B, 2, gh, gw]."""
        d = self.peer_dist[rows]
        return position_stats(d.sum(dim=1), (d * d).sum(dim=1), self.peers)

    # -- global branch -----------------------------------------------------------------------------
    def pool(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Per-channel mean and std of the deepest levels -> [B, G]."""
        parts = []
        for f in feats[len(feats) - self.global_levels :]:
            mean = f.mean(dim=(2, 3))
            var = (f * f).mean(dim=(2, 3)) - mean * mean
            parts += [mean, var.clamp_min(1e-12).sqrt()]
        return torch.cat(parts, dim=1)

    def global_key(self, pooled: torch.Tensor) -> torch.Tensor:
        """Whitened pooled features [B, G]: their norm is the global distance, and they pick references."""
        return (pooled - self.g_mean) @ self.g_whiten

    @staticmethod
    def global_distance(key: torch.Tensor) -> torch.Tensor:
        """Whitened pooled features [B, G] -> their Mahalanobis distance [B] to the normal distribution."""
        return (key * key).sum(dim=1).sqrt()

    def peer_rows(self, pooled: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled statistics [B, G] -> indices [B, peers] of the nearest training images (standardised statistics).

        exclude: bool [B, peer_images] of training images to skip (an image's own, or its part's, when fitting
        scores it out-of-sample); never set in the exported graph.
        """
        z = (pooled - self.peer_stats[0]) / self.peer_stats[1]
        return nearest_rows(z, self.peer_key, self.peers, exclude)

    def peer_offset(self, rows: torch.Tensor) -> torch.Tensor:
        """Indices [B, K] of each image's peers -> their mean out-of-sample score [B]."""
        return self.peer_score[rows].mean(dim=1)

    # -- learnt branch -------------------------------------------------------------------------------
    def seg_cells(self, emb: torch.Tensor) -> torch.Tensor:
        """Defect logits of each patch [B, gh, gw]."""
        return self.seg(emb).squeeze(1)

    def seg_map(self, emb: torch.Tensor) -> torch.Tensor:
        """`seg_cells` as a smoothed map [B, H, W] at the input size."""
        return self.to_map(self.seg_cells(emb))

    def seg_evidence(self, seg_raw: torch.Tensor) -> torch.Tensor:
        """The learnt map in the units it is blended in: standardised, and with `seg_gate` only its excess."""
        z = (seg_raw - self.seg_norm[0]) / self.seg_norm[1]
        return z.clamp_min(0.0) if self.seg_gate else z

    def blend(self, amap: torch.Tensor, seg_raw: torch.Tensor) -> torch.Tensor:
        n = self.seg_norm
        return (mix(amap, self.seg_evidence(seg_raw), n[2]) - n[3]) / n[4]

    # -- fused ---------------------------------------------------------------------------------------
    def fuse(self, bank: torch.Tensor, patch: torch.Tensor | None, raw_global: torch.Tensor,
             seg_raw: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The patch branch's standardised map and score (`standardise_bank`), the raw global distance [B] and
        the learnt logits map -> (score [B], map [B, H, W])."""
        amap = bank if seg_raw is None else self.blend(bank, seg_raw)
        if patch is None:
            patch = amap.flatten(1).amax(dim=1)
        glob = (raw_global - self.norm[2]) / self.norm[3]
        w = self.global_weight
        return (1.0 - w) * patch + w * glob, amap

    def forward(self, feats: list[torch.Tensor], emb: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone maps (and their embeddings, when the caller has them already) -> (score [B], map [B, H, W])."""
        emb = self.embed(feats) if emb is None else emb
        bank, patch, key, rows = self.bank_branch(feats, emb)
        seg_raw = self.seg_map(emb) if self.seg is not None else None
        score, amap = self.fuse(bank, patch, self.global_distance(key), seg_raw)
        if rows is not None:
            score = score - self.peer_offset(rows)
        return score, amap

    def set_bank(self, bank: torch.Tensor) -> None:
        """Install fitted normal patch embeddings (level-scaled)."""
        self.bank = bank.contiguous().float()
        self.bank_sq = (self.bank * self.bank).sum(dim=1)


def _box3(x: torch.Tensor) -> torch.Tensor:
    """3x3 mean of grids [..., gh, gw] (edges replicated)."""
    lead = x.shape[:-2]
    y = F.avg_pool2d(F.pad(x.reshape(-1, 1, *x.shape[-2:]), (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return y.reshape(*lead, *x.shape[-2:])


def position_stats(s1: torch.Tensor, s2: torch.Tensor, n: int, prior: float = POSITION_PRIOR) -> torch.Tensor:
    """loc and scale [..., 2, gh, gw] of patch distances per grid cell, from their sums and sums of squares
    [..., gh, gw] over n images: 3x3-smoothed, and shrunk towards the whole grid's values as if `prior` more
    images had shown those (few images give noisy cells). Computed in the sums' dtype."""
    cells = s1.shape[-2] * s1.shape[-1]
    mean, var = s1 / n, (s2 - s1 * s1 / n) / max(n - 1, 1)
    t1, t2 = s1.sum(dim=(-2, -1), keepdim=True), s2.sum(dim=(-2, -1), keepdim=True)
    g_mean = t1 / (n * cells)
    g_var = (t2 - t1 * t1 / (n * cells)) / max(n * cells - 1, 1)
    w = n / (n + prior)
    loc = w * _box3(mean) + (1 - w) * g_mean
    scale = (w * _box3(var.clamp_min(0)) + (1 - w) * g_var).clamp_min(1e-12).sqrt()
    return torch.stack([loc, scale], dim=-3)


def _smallest(d: torch.Tensor, k: int) -> torch.Tensor:
    """The k smallest values of each row [N, M] -> [N, min(k, M)] (k = 1: the minimum, cheaper than top-k)."""
    return d.amin(dim=1, keepdim=True) if k == 1 else d.topk(min(k, d.shape[1]), dim=1, largest=False).values


def nearest_rows(query: torch.Tensor, rows: torch.Tensor, k: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Indices [B, k] of the k rows [N, G] nearest (Euclidean) to each query [B, G]; `exclude` [B, N] skips rows.

    Ranked by |row|^2 - 2 query.row, which orders like |query - row|^2: without the query's own (often
    large) norm in the sum, float32 resolves near-ties finer, so torch and exported runtimes pick the same rows.
    """
    d = (rows * rows).sum(dim=1) - 2.0 * query @ rows.t()
    if exclude is not None:
        d = d.masked_fill(exclude, float("inf"))
    return d.topk(k, dim=1, largest=False).indices


def mix(bank_z: torch.Tensor, seg_z: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """The blend of the standardised memory-bank and learnt maps, before its re-standardisation."""
    return (1.0 - alpha) * bank_z + alpha * seg_z


def seg_classifier(dim: int, hidden: int) -> nn.Sequential:
    """Per-patch defect classifier on the (level-scaled) embeddings: two 1x1 convolutions."""
    return nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 1, 1))


class ContextSegmenter(nn.Module):
    """Learnt defect logits [B, 1, gh', gw'] from patch embeddings [B, D, gh, gw], each cell judged with the whole
    image in view: the embeddings at half their grid, standardised per channel (`loc`, `scale`) and paired with
    their difference from the image's mean, go through two stride-2 stages and back, with the deepest stage's
    mean as a global input. A region ground or lit unlike the rest of this part (each side normal on its own)
    is then marked inside, not only at its edge, which no per-patch classifier or memory bank can do.
    """

    def __init__(self, dim: int, width: int = 64) -> None:
        super().__init__()
        self.register_buffer("loc", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.inp = nn.Sequential(nn.Conv2d(2 * dim, 2 * width, 1), nn.ReLU(), nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU())
        self.down1 = _down(width)
        self.down2 = _down(width)
        self.glob = nn.Linear(width, width)
        self.out = nn.Sequential(nn.Conv2d(4 * width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 1, 1))

    def prepare(self, emb: torch.Tensor) -> torch.Tensor:
        """Embeddings -> the network's input cells, unstandardised [B, D, gh', gw'] (what training stores)."""
        # ceil_mode only where it changes the output: onnxruntime pools without it in its blocked layout, ~3x faster
        return F.avg_pool2d(emb, 2, ceil_mode=bool(emb.shape[-2] % 2 or emb.shape[-1] % 2))

    def forward(self, emb: torch.Tensor, prepared: bool = False) -> torch.Tensor:
        z = self._standardise(emb if prepared else self.prepare(emb))
        return self._tail(self.inp(torch.cat([z, z - z.mean(dim=(2, 3), keepdim=True)], dim=1)))

    def train_logits(self, x: torch.Tensor) -> torch.Tensor:
        """`forward(x, prepared=True)` for training: the same parameters, logits and gradients in about two thirds
        of the time, since the input layer's image-mean half and the output layer's global quarter, each constant
        over the image, are applied once per image instead of once per cell (the exported graph keeps `forward`)."""
        z = self._standardise(x)
        conv, d = self.inp[0], z.shape[1]
        w = conv.weight.flatten(1)  # [z's weights | (z - mean)'s weights]
        h = F.conv2d(z, (w[:, :d] + w[:, d:])[:, :, None, None], conv.bias) - F.linear(z.mean(dim=(2, 3)), w[:, d:])[:, :, None, None]
        return self._tail(self.inp[1:](h), per_image_global=True)

    def _standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.loc.view(1, -1, 1, 1)) / self.scale.view(1, -1, 1, 1)

    def _tail(self, a: torch.Tensor, per_image_global: bool = False) -> torch.Tensor:
        b = self.down1(a)
        c = self.down2(b)
        size = a.shape[-2:]
        g = self.glob(c.mean(dim=(2, 3)))
        local = [a, *(upsample(t, size) for t in (b, c))]
        if not per_image_global:
            return self.out(torch.cat([*local, g[:, :, None, None].expand_as(a)], dim=1))
        conv, k = self.out[0], 3 * a.shape[1]
        # a 3x3 convolution of a map constant over the image is, per output cell, the sum of the kernel taps
        # that fall inside the image: (valid rows)^T (taps . g) (valid columns)
        taps = torch.einsum("ocij,bc->boij", conv.weight[:, k:], g)
        glob = _inside_taps(size[0], a).t() @ taps @ _inside_taps(size[1], a)
        return self.out[1:](F.conv2d(torch.cat(local, dim=1), conv.weight[:, :k], conv.bias, padding=1) + glob)


def upsample(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of maps [B, C, h, w] to `size`; by the scale factor where it is whole, which
    gives the same values, and exports as a Resize by constant scales: onnxruntime runs that in its blocked layout
    (NchwcUpsample), about 3x faster than a Resize to sizes computed in the graph."""
    h, w = x.shape[-2:]
    if size[0] % h or size[1] % w:
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
    return F.interpolate(x, scale_factor=(size[0] // h, size[1] // w), mode="bilinear", align_corners=False)


def _inside_taps(n: int, like: torch.Tensor) -> torch.Tensor:
    """[3, n]: whether a 3x3 kernel's tap i (offset i - 1) lands inside a line of n cells from cell y."""
    pos = torch.arange(n, device=like.device)[None, :] + torch.arange(-1, 2, device=like.device)[:, None]
    return ((pos >= 0) & (pos < n)).to(like.dtype)


def _down(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(width, width, 3, padding=1, stride=2), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
