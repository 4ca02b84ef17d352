"""The anomaly head's tensor ops against brute-force references."""

from __future__ import annotations

import pytest
import torch

import model.head as head_module
from model.head import AnomalyHead, ContextSegmenter, gaussian_kernel1d, position_stats


def make_head(channels=(4, 6), size=(32, 32), bank=50, **kw) -> AnomalyHead:
    return AnomalyHead(channels, size, bank, **kw)


def position_max(head: AnomalyHead, dist: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
    return head.positional_map(dist, stats).flatten(1).amax(dim=1)


def test_nearest_neighbour_distance_equals_cdist(monkeypatch):
    g = torch.Generator().manual_seed(0)
    head = make_head()
    bank = torch.randn(50, 10, generator=g)
    head.set_bank(bank)
    emb = torch.randn(2, 10, 4, 4, generator=g)
    ref = torch.cdist(emb.permute(0, 2, 3, 1).reshape(-1, 10).double(), bank.double()).amin(dim=1).reshape(2, 4, 4)
    torch.testing.assert_close(head.patch_distances(emb).double(), ref, rtol=1e-4, atol=1e-4)
    monkeypatch.setattr(head_module, "BANK_CHUNK", 7)  # several bank chunks: same minimum
    torch.testing.assert_close(head.patch_distances(emb).double(), ref, rtol=1e-4, atol=1e-4)
    exclude = torch.arange(50) % 3 == 0  # rows to ignore, across chunk boundaries
    ref = torch.cdist(emb.permute(0, 2, 3, 1).reshape(-1, 10).double(), bank[~exclude].double()).amin(dim=1).reshape(2, 4, 4)
    torch.testing.assert_close(head.patch_distances(emb, exclude=exclude).double(), ref, rtol=1e-4, atol=1e-4)


def test_neighbours_average_the_distances_to_the_k_nearest_bank_patches(monkeypatch):
    g = torch.Generator().manual_seed(2)
    head = make_head(neighbours=3)
    bank = torch.randn(50, 10, generator=g)
    head.set_bank(bank)
    emb = torch.randn(2, 10, 4, 4, generator=g)
    x = emb.permute(0, 2, 3, 1).reshape(-1, 10).double()

    def ref(rows: torch.Tensor, k: int = 3) -> torch.Tensor:
        return torch.cdist(x, rows.double()).topk(k, dim=1, largest=False).values.mean(dim=1).reshape(2, 4, 4)

    torch.testing.assert_close(head.patch_distances(emb).double(), ref(bank), rtol=1e-4, atol=1e-4)
    nearest = make_head()
    nearest.set_bank(bank)
    assert (head.patch_distances(emb) > nearest.patch_distances(emb)).all()  # a mean of three, not the nearest
    monkeypatch.setattr(head_module, "BANK_CHUNK", 7)  # the three nearest found across chunks
    torch.testing.assert_close(head.patch_distances(emb).double(), ref(bank), rtol=1e-4, atol=1e-4)
    exclude = torch.arange(50) % 3 == 0
    torch.testing.assert_close(head.patch_distances(emb, exclude=exclude).double(), ref(bank[~exclude]), rtol=1e-4, atol=1e-4)
    # fewer rows left than neighbours: the mean over those; none left: infinitely far, as with one neighbour
    two = torch.arange(50) >= 2
    torch.testing.assert_close(head.patch_distances(emb, exclude=two).double(), ref(bank[:2], 2), rtol=1e-4, atol=1e-4)
    assert torch.isinf(head.patch_distances(emb, exclude=torch.ones(50, dtype=torch.bool))).all()
    small = make_head(bank=2, neighbours=3)  # a bank smaller than neighbours: all of it
    small.set_bank(bank[:2])
    torch.testing.assert_close(small.patch_distances(emb).double(), ref(bank[:2], 2), rtol=1e-4, atol=1e-4)


def test_a_patch_in_the_bank_scores_about_zero():
    g = torch.Generator().manual_seed(1)
    head = make_head(bank=16)
    emb = torch.randn(1, 10, 4, 4, generator=g) * 3.0
    head.set_bank(emb.permute(0, 2, 3, 1).reshape(16, 10))
    d = head.patch_distances(emb)
    typical = torch.cdist(head.bank, head.bank).topk(2, largest=False).values[:, 1].min()  # nearest other patch
    assert d.max() < 1e-2 * typical


def test_embed_brings_every_level_to_the_grid_and_scales_it():
    head = make_head(size=(64, 64))  # grid 8x8
    feats = [torch.randn(2, 4, 16, 16), torch.randn(2, 6, 4, 4)]  # finer and coarser than the grid
    head.level_scale = torch.arange(1.0, 11.0)
    emb = head.embed(feats)
    assert tuple(emb.shape) == (2, 10, 8, 8)
    head.level_scale = torch.ones(10)
    torch.testing.assert_close(head.embed(feats) * torch.arange(1.0, 11.0).view(1, -1, 1, 1), emb)
    # a constant level stays constant whatever pooling and resizing does
    const = head.embed([torch.full((1, 4, 16, 16), 2.0), torch.full((1, 6, 4, 4), -1.0)])
    torch.testing.assert_close(const[:, :4], torch.full((1, 4, 8, 8), 2.0))
    torch.testing.assert_close(const[:, 4:], torch.full((1, 6, 8, 8), -1.0))


def test_map_is_upsampled_to_the_input_and_peaks_where_the_patch_is():
    head = make_head(size=(64, 96), sigma=2.0)  # grid 8x12
    dist = torch.zeros(1, 8, 12)
    dist[0, 2, 9] = 5.0
    amap = head.to_map(dist)
    assert tuple(amap.shape) == (1, 64, 96)
    y, x = divmod(int(amap[0].argmax()), 96)
    assert abs(y - (2 * 8 + 3.5)) <= 2 and abs(x - (9 * 8 + 3.5)) <= 2  # centre of patch (2, 9), 8 px per patch
    flat = head.to_map(torch.full((1, 8, 12), 3.0))
    torch.testing.assert_close(flat, torch.full((1, 64, 96), 3.0))  # blur and borders keep a flat map flat


@pytest.mark.parametrize("cells", [(8, 12), (4, 6), (5, 7)])  # the grid, the learnt branch's half grid, another one
def test_map_as_matrix_products_equals_resize_then_blur(cells):
    """to_map multiplies by per-axis matrices; it must give what a bilinear resize and the 1-D Gaussian passes with
    replicated edges give (what it replaced, 1.23x slower in ONNX Runtime), the don't-care fill included."""
    import torch.nn.functional as F

    head = make_head(size=(64, 96), sigma=4.0)
    dist = torch.rand(2, *cells, generator=torch.Generator().manual_seed(0)) * 5.0
    m = F.interpolate(dist.unsqueeze(1), size=(64, 96), mode="bilinear", align_corners=False)
    k, r = head.blur, head.blur.numel() // 2
    m = F.conv2d(F.pad(m, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    m = F.conv2d(F.pad(m, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1)).squeeze(1)
    torch.testing.assert_close(head.to_map(dist), m, rtol=1e-5, atol=1e-5)
    keep = torch.ones(64, 96)
    keep[10:30, 40:70] = 0.0
    head.keep = keep
    filled = m * keep + m.amin(dim=(1, 2), keepdim=True) * (1.0 - keep)
    torch.testing.assert_close(head.to_map(dist), filled, rtol=1e-5, atol=1e-5)


def test_gaussian_kernel():
    k = gaussian_kernel1d(4.0)
    assert k.numel() == 2 * 16 + 1 and float(k.sum()) == pytest.approx(1.0)
    torch.testing.assert_close(k, k.flip(0))
    assert int(k.argmax()) == 16


def test_global_distance_is_mahalanobis():
    g = torch.Generator().manual_seed(2)
    head = make_head()  # global branch over both levels: 2 * (4 + 6) = 20 dims
    x = torch.randn(500, 20, generator=g) * torch.linspace(0.5, 3.0, 20)
    mean = x.mean(0)
    cov = torch.cov(x.T).double()
    evals, evecs = torch.linalg.eigh(cov)
    head.g_mean, head.g_whiten = mean, (evecs / evals.sqrt()).float()
    q = torch.randn(3, 20, generator=g)
    ref = torch.einsum("bi,ij,bj->b", (q - mean).double(), torch.linalg.inv(cov), (q - mean).double()).sqrt()
    torch.testing.assert_close(head.global_distance(head.global_key(q)).double(), ref, rtol=1e-4, atol=1e-4)


def test_pool_is_mean_and_std_of_the_deepest_levels():
    head = make_head(channels=(3, 4, 5), global_levels=2)
    feats = [torch.randn(2, c, 6, 6) for c in (3, 4, 5)]
    pooled = head.pool(feats)
    expected = torch.cat([feats[1].mean((2, 3)), feats[1].std((2, 3), unbiased=False),
                          feats[2].mean((2, 3)), feats[2].std((2, 3), unbiased=False)], dim=1)
    torch.testing.assert_close(pooled, expected, rtol=1e-4, atol=1e-4)


def test_fuse_standardises_each_branch_and_mixes_them():
    head = make_head(global_weight=0.25)
    head.norm = torch.tensor([1.0, 2.0, 10.0, 4.0])
    raw_map = torch.zeros(1, 32, 32)
    raw_map[0, 3, 4] = 9.0  # standardised peak (9 - 1) / 2 = 4
    score, amap = head.fuse(*head.standardise_bank(raw_map, None), torch.tensor([18.0]))  # standardised global (18 - 10) / 4 = 2
    assert float(score) == pytest.approx(0.75 * 4.0 + 0.25 * 2.0)
    torch.testing.assert_close(amap, (raw_map - 1.0) / 2.0)


def test_position_norm_discounts_distances_where_good_parts_are_always_far():
    head = make_head(size=(32, 32), sigma=1.0, position_norm=True)  # grid 4x4
    head.pos_stats = torch.stack([torch.full((4, 4), 1.0), torch.full((4, 4), 0.5)])
    head.pos_stats[:, 0, 0] = torch.tensor([5.0, 2.0])  # an edge cell where good parts reach 5 +- 2
    head.pos_norm = torch.tensor([1.0, 2.0])
    at_edge, inside = torch.ones(1, 4, 4), torch.ones(1, 4, 4)
    at_edge[0, 0, 0] = inside[0, 2, 2] = 6.0
    assert float(position_max(head, at_edge)) < float(position_max(head, inside))
    flat = position_max(head, torch.full((1, 4, 4), 3.0), torch.stack([torch.full((4, 4), 1.0), torch.full((4, 4), 0.5)]))
    assert float(flat) == pytest.approx((3.0 - 1.0) / 0.5)  # the blur keeps a flat map flat
    # the fused score takes the patch part from the positional map's maximum, standardised by pos_norm; the map
    # is the plain one, or with position_map that positional map
    head.norm = torch.tensor([1.0, 2.0, 10.0, 4.0])
    raw_map, pos_map = torch.full((1, 32, 32), 3.0), torch.full((1, 32, 32), 2.0)
    pos_map[0, 5, 6] = 7.0
    for shown, expected_map in ((False, (raw_map - 1.0) / 2.0), (True, (pos_map - 1.0) / 2.0)):
        head.position_map = shown
        score, amap = head.fuse(*head.standardise_bank(raw_map, pos_map), torch.tensor([18.0]))
        assert float(score) == pytest.approx(0.5 * (7.0 - 1.0) / 2.0 + 0.5 * 2.0)
        torch.testing.assert_close(amap, expected_map)


def test_position_norm_changes_the_score_not_the_map():
    torch.manual_seed(0)
    plain, positional = make_head(size=(32, 32)), make_head(size=(32, 32), position_norm=True)
    bank = torch.randn(50, 10)
    for h in (plain, positional):
        h.set_bank(bank)
    positional.pos_stats = torch.stack([torch.rand(4, 4) + 1.0, torch.rand(4, 4) + 0.5])
    feats = [torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)]
    (s0, m0), (s1, m1) = plain(feats), positional(feats)
    torch.testing.assert_close(m0, m1)
    dist = plain.patch_distances(plain.embed(feats))
    expected = 0.5 * position_max(positional, dist) + 0.5 * positional.global_distance(positional.global_key(positional.pool(feats)))
    torch.testing.assert_close(s1, expected)
    assert not torch.allclose(s0, s1)


def test_position_map_shows_where_the_score_comes_from():
    """With position_map the map is the positional map (peers' cell statistics) standardised by pos_norm:
    its peak is the patch score. Without it the map is the raw one and the score the same."""
    g = torch.Generator().manual_seed(0)
    assert not make_head(position_norm=True, position_map=True).position_map  # needs peer position statistics
    head = make_head(size=(32, 32), position_norm=True, peers=2, peer_images=3, peer_position=True, position_map=True, global_weight=0.0)
    head.set_bank(torch.randn(50, 10, generator=g))
    head.peer_key, head.peer_dist = torch.randn(3, 20, generator=g), torch.rand(3, 4, 4, generator=g) + 1.0
    head.pos_norm = torch.tensor([0.5, 2.0])
    head.norm = torch.tensor([3.0, 0.25, 0.0, 1.0])  # the raw map's standardisation: unused by this map
    feats = [torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 6, 4, 4, generator=g)]
    score, amap = head(feats)
    dist = head.patch_distances(head.embed(feats))
    stats = head.peer_position_stats(head.peer_rows(head.pool(feats)))
    torch.testing.assert_close(amap, (head.positional_map(dist, stats) - 0.5) / 2.0)
    torch.testing.assert_close(score, amap.flatten(1).amax(dim=1))  # peer_score is 0: no offset
    head.position_map = False
    score_plain, amap_plain = head(feats)
    torch.testing.assert_close(score_plain, score)
    torch.testing.assert_close(amap_plain, (head.to_map(dist) - 3.0) / 0.25)


@pytest.mark.parametrize("r", [0, 1, 2])
def test_reference_distances_match_brute_force(r):
    """Each patch's distance is the minimum over the k nearest references (by global key) and over the
    cells within the radius of its own (clamped at the grid's edge); excluded references are skipped."""
    g = torch.Generator().manual_seed(5)
    head = make_head(size=(40, 48), references=6, ref_k=2, ref_radius=r)  # grid 5x6, dim 10, key dim 20
    head.ref_emb = torch.randn(6, 10, 5, 6, generator=g).half()
    head.ref_key = torch.randn(6, 20, generator=g)
    emb, key = torch.randn(3, 10, 5, 6, generator=g), torch.randn(3, 20, generator=g)
    exclude = torch.zeros(3, 6, dtype=torch.bool)
    exclude[1, torch.cdist(key[1:2], head.ref_key).argmin()] = True  # image 1's nearest reference is its own

    refs = head.ref_emb.double()
    for ex in (None, exclude):
        got = head.reference_distances(emb, key, ex).double()
        for b in range(3):
            kd = torch.cdist(key[b : b + 1], head.ref_key).squeeze(0)
            if ex is not None:
                kd[ex[b]] = float("inf")
            near = kd.argsort()[:2]
            for i in range(5):
                for j in range(6):
                    cand = refs[near][:, :, max(i - r, 0) : i + r + 1, max(j - r, 0) : j + r + 1]
                    ref = (cand - emb[b, :, i, j].double().view(1, -1, 1, 1)).pow(2).sum(dim=1).min().sqrt()
                    torch.testing.assert_close(got[b, i, j], ref, rtol=1e-4, atol=1e-4)


def test_reference_head_scores_a_stored_image_about_zero():
    g = torch.Generator().manual_seed(6)
    head = make_head(size=(32, 32), references=3, ref_k=2)
    head.ref_emb = (torch.randn(3, 10, 4, 4, generator=g) * 3.0).half()
    head.ref_key = torch.randn(3, 20, generator=g)
    own = head.reference_distances(head.ref_emb[1:2].float(), head.ref_key[1:2])
    others = head.reference_distances(head.ref_emb[1:2].float(), head.ref_key[1:2], torch.tensor([[False, True, False]]))
    assert float(own.max()) < 1e-2 * float(others.min())


def test_peer_offset_is_the_mean_score_of_the_nearest_standardised_training_images():
    g = torch.Generator().manual_seed(8)
    head = make_head(peers=2, peer_images=6)  # pooled statistics of channels (4, 6): G = 20
    pooled = torch.randn(6, 20, generator=g) * 3.0 + 1.0
    loc, scale = pooled.mean(0), pooled.std(0)
    head.peer_stats, head.peer_key = torch.stack([loc, scale]), (pooled - loc) / scale
    head.peer_score = torch.randn(6, generator=g)
    query = torch.randn(3, 20, generator=g) * 3.0 + 1.0
    nearest = torch.cdist((query - loc) / scale, head.peer_key).topk(2, largest=False).indices
    torch.testing.assert_close(head.peer_rows(query).sort(1).values, nearest.sort(1).values)
    torch.testing.assert_close(head.peer_offset(head.peer_rows(query)), head.peer_score[nearest].mean(1))
    own = torch.eye(6, dtype=torch.bool)[:3]  # query rows 0-2 are training images 0-2, skipped for themselves
    d = torch.cdist(head.peer_key[:3], head.peer_key).masked_fill(own, float("inf"))
    expected = head.peer_score[d.topk(2, largest=False).indices].mean(1)
    torch.testing.assert_close(head.peer_offset(head.peer_rows(pooled[:3], own)), expected)
    assert not hasattr(make_head(), "peer_key")  # peers = 0: no buffers, the fused score as it is
    assert not make_head(peers=2, peer_images=6, peer_position=True).peer_position  # needs position_norm too


def test_peer_position_standardises_each_image_by_its_peers_cells():
    """With peer_position the patch score's cell statistics are those of the image's own peers' distances
    (`position_stats` over them), not the stored ones of every training image; the map is unchanged."""
    g = torch.Generator().manual_seed(9)
    head = make_head(size=(32, 32), sigma=1.0, position_norm=True, peers=2, peer_images=5, peer_position=True)
    plain = make_head(size=(32, 32), sigma=1.0, position_norm=True)
    head.peer_key, head.peer_score = torch.randn(5, 20, generator=g), torch.randn(5, generator=g)
    head.peer_dist = torch.rand(5, 4, 4, generator=g) * 2.0 + 1.0
    head.peer_dist[3:, 0, 0] += 6.0  # training images 3 and 4 are always far at the edge cell
    head.pos_stats = position_stats(head.peer_dist.sum(0), (head.peer_dist ** 2).sum(0), 5)
    for h in (head, plain):
        h.set_bank(torch.randn(50, 10, generator=g))
        h.pos_stats = head.pos_stats
    emb = torch.randn(2, 10, 4, 4, generator=g)
    dist = head.patch_distances(emb)
    rows = torch.tensor([[3, 4], [0, 1]])  # image 0's peers are the two far at the edge, image 1's two others
    stats = head.peer_position_stats(rows)
    for i in range(2):
        d = head.peer_dist[rows[i]]
        torch.testing.assert_close(stats[i], position_stats(d.sum(0), (d * d).sum(0), 2))
        torch.testing.assert_close(position_max(head, dist[i : i + 1], stats[i]), position_max(head, dist, stats)[i : i + 1])
    assert float(stats[0, 0, 0, 0]) > float(stats[1, 0, 0, 0]) + 0.5  # the edge cell's loc follows the peers (smoothed, shrunk)
    # forward: the peers found from the pooled statistics pick the cell statistics and the offset
    feats = [torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 6, 4, 4, generator=g)]
    pooled = head.pool(feats)
    head.peer_stats = torch.stack([torch.zeros(20), torch.ones(20)])  # keys are the pooled statistics themselves
    head.peer_key = torch.stack([pooled[0] + 0.01, pooled[0] - 0.01, pooled[1] + 0.01, pooled[1] - 0.01, pooled[0] + 100.0])
    rows = head.peer_rows(pooled)
    assert sorted(rows[0].tolist()) == [0, 1] and sorted(rows[1].tolist()) == [2, 3]
    emb = head.embed(feats)
    dist = head.patch_distances(emb)
    score, amap = head(feats)
    plain.norm = head.norm
    glob = plain.global_distance(plain.global_key(pooled))
    expected, plain_map = plain.fuse(*plain.standardise_bank(plain.to_map(dist), head.positional_map(dist, head.peer_position_stats(rows))), glob)
    torch.testing.assert_close(score, expected - head.peer_offset(rows))
    torch.testing.assert_close(amap, plain_map)
    other, _ = plain.fuse(*plain.standardise_bank(plain.to_map(dist), head.positional_map(dist)), glob)
    assert not torch.allclose(expected, other)  # the stored statistics of every training image would score otherwise


@pytest.mark.parametrize("grid", [(6, 10), (1, 3)])
def test_context_segmenter_trains_on_the_same_function_it_exports(grid):
    """`train_logits` (training's cheaper form) must give the exported `forward`'s logits and gradients."""
    torch.manual_seed(0)
    seg = ContextSegmenter(12, 8).double()  # float64: the two forms differ only by rounding
    seg.loc.normal_()
    seg.scale.uniform_(0.5, 2.0)
    with torch.no_grad():  # biases away from zero, so a term dropped at the border would show
        for p in seg.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(3, 12, *grid, dtype=torch.float64)
    outs, grads = [], []
    for logits in (lambda: seg(x, prepared=True), lambda: seg.train_logits(x.contiguous(memory_format=torch.channels_last))):
        seg.zero_grad()
        out = logits()
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        outs.append(out.detach())
        grads.append([p.grad.clone() for p in seg.parameters()])
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-10, atol=1e-10)
    for a, b in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
