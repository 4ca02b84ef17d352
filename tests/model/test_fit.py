"""Fitting on the synthetic tiny data: defects outscore good parts, maps find them, thresholds are stored."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from model.checkpoint import load_checkpoint
from model.data import Dataset, load_dataset
from model.defect_learning import DefectLearning
from model.errors import InspectorError
from model.evaluate import metrics_report, score_samples
from model.fit import CHUNK, FitOptions, _level_variance, fit, fit_good_only, in_chunks, patch_rows
from model.head import position_stats
from model.metrics import roc_auc
from model.net import InspectorNet, NetConfig


@pytest.fixture(scope="module")
def scored(tiny_ckpt, tiny_data):
    net, manifest = load_checkpoint(tiny_ckpt)
    ds = load_dataset(tiny_data)
    return net, manifest, ds, score_samples(net, ds.test, with_masks=True), score_samples(net, ds.train)


def test_scoring_in_batches_keeps_each_image_with_its_own_mask(scored):
    """fit calibrates in batches of 16, eval times batch 1: the same scores, maps and masks, in order."""
    net, _, ds, test, _ = scored
    batched = score_samples(net, ds.test, with_masks=True, batch_size=3)  # a last batch of another size too
    assert len(ds.test) % 3 and len(batched.ms_per_image) == -(-len(ds.test) // 3)
    np.testing.assert_allclose(batched.scores, test.scores, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(batched.maps, test.maps, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(batched.masks, test.masks)
    assert test.masks.any(axis=(1, 2)).sum() > 1  # masks differ between images, so a shuffle would show


def test_defects_score_above_good_parts(scored):
    _, _, ds, test, _ = scored
    labels = np.array([s.is_defect for s in ds.test])
    assert roc_auc(labels, test.scores) > 0.9


def test_training_images_score_below_defects(scored):
    _, _, ds, test, train = scored
    labels = np.array([s.is_defect for s in ds.test])
    assert np.median(train.scores) < test.scores[labels].min()


def test_maps_locate_the_planted_defects(scored):
    _, _, ds, test, _ = scored
    report = metrics_report(ds.test, test)
    assert report["pixel_auroc"] > 0.85
    labels = np.array([s.is_defect for s in ds.test])
    hits = 0
    for amap, mask in zip(test.maps[labels], test.masks[labels], strict=True):
        y, x = np.unravel_index(np.argmax(amap), amap.shape)
        ys, xs = np.nonzero(mask)
        hits += (ys.min() - 8 <= y <= ys.max() + 8) and (xs.min() - 8 <= x <= xs.max() + 8)  # within one patch
    assert hits >= 3


def test_a_defect_without_its_mask_is_left_out_of_the_pixel_metrics(scored):
    """Its mask reads all normal, which would count its defect pixels as false alarms."""
    net, _, ds, test, _ = scored
    i = next(k for k, s in enumerate(ds.test) if s.is_defect)
    samples = list(ds.test)
    samples[i] = replace(samples[i], mask_path=None)
    unmasked = score_samples(net, samples, with_masks=True)
    assert not unmasked.masks[i].any()
    report = metrics_report(samples, unmasked)
    keep = np.arange(len(samples)) != i
    assert report["defects_without_masks"] == 1 and metrics_report(ds.test, test)["defects_without_masks"] == 0
    assert report["pixel_auroc"] == round(roc_auc(test.masks[keep].ravel(), test.maps[keep].ravel()), 4)
    assert report["pixel_auroc"] != round(roc_auc(unmasked.masks.ravel(), unmasked.maps.ravel()), 4)


def test_outputs_at_the_input_size(scored):
    net, _, _, test, _ = scored
    assert test.maps.shape[1:] == (64, 64)
    with torch.no_grad():
        score, amap = net(torch.rand(2, 3, 64, 64))[:2]
    assert tuple(score.shape) == (2,) and tuple(amap.shape) == (2, 64, 64)


def test_thresholds_and_training_record_are_stored(scored, tiny_data):
    _, manifest, ds, test, _ = scored
    thr = manifest["thresholds"]
    assert np.isfinite(thr["image"]) and np.isfinite(thr["pixel"])
    labels = np.array([s.is_defect for s in ds.test])
    # escape policy 1% on 4 defects: none of them may pass
    assert (test.scores[labels] >= thr["image"]).all()
    t = manifest["training"]
    assert t["n_images"] == 12 and t["root"] == str(tiny_data) and len(t["data_sha256"]) == 64
    assert t["fit_seconds"] > 0
    json.dumps(manifest)


def _few(tiny_data, n: int) -> Dataset:
    ds = load_dataset(tiny_data / "train" / "good")
    return Dataset(ds.root, ds.train[:n])


def test_fit_is_deterministic(tiny_data):
    opts = dict(input_size=64, coreset_ratio=0.5, batch_size=8)
    a, ra = fit(_few(tiny_data, 5), FitOptions(**opts))
    b, rb = fit(_few(tiny_data, 5), FitOptions(**opts))
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert ra.thresholds == rb.thresholds


@pytest.mark.parametrize("k", [1, 3])
def test_good_images_are_scored_without_their_own_patches(tiny_data, k):
    """The standardisation uses out-of-sample maps: each image's nearest normal patches come from the other
    images (all patches kept, so the brute-force reference is exact)."""
    net, good = fit_good_only(_few(tiny_data, 5), FitOptions(input_size=64, coreset_ratio=1.0, neighbours=k))
    head = net.head
    assert head.neighbours == k
    emb = good.first_view.float()
    patches = emb.permute(0, 2, 3, 1).reshape(5, -1, emb.shape[1]).double()
    for i in range(5):
        others = torch.cat([patches[j] for j in range(5) if j != i])
        dist = torch.cdist(patches[i], others).topk(k, dim=1, largest=False).values.mean(dim=1)
        torch.testing.assert_close(good.raw_cells[i], dist.float().reshape(emb.shape[2:]), rtol=1e-3, atol=1e-3)
    in_sample = head.patch_distances(emb[:1])
    assert (in_sample < good.raw_cells[:1]).all()  # its own patches are among the nearest
    if k == 1:
        assert float(in_sample.max()) < 1e-2 * float(good.raw_cells[0].mean())  # its own patch: ~0


def test_position_stats_are_smoothed_cell_statistics_shrunk_to_the_grid():
    g = torch.Generator().manual_seed(3)
    d = torch.rand(6, 4, 5, generator=g, dtype=torch.float64) * 3.0
    s1, s2 = d.sum(0), (d * d).sum(0)

    def box(x):  # 3x3 mean, indices clamped at the edges
        h, w = x.shape
        return torch.tensor([[float(np.mean([x[min(max(i + a, 0), h - 1), min(max(j + b, 0), w - 1)] for a in (-1, 0, 1) for b in (-1, 0, 1)]))
                              for j in range(w)] for i in range(h)], dtype=x.dtype)

    loc, scale = position_stats(s1, s2, 6, prior=0.0).double()
    torch.testing.assert_close(loc, box(d.mean(0)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scale, box(d.var(0)).sqrt(), rtol=1e-5, atol=1e-6)
    loc, scale = position_stats(s1, s2, 6, prior=6.0).double()  # half weight on the whole grid's mean and variance
    torch.testing.assert_close(loc, 0.5 * box(d.mean(0)) + 0.5 * d.mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scale, (0.5 * box(d.var(0)) + 0.5 * d.var()).sqrt(), rtol=1e-5, atol=1e-6)
    # a batch of sums (one image's peers each) gives each item's own statistics, stacked
    d2 = d.flip(1) + 1.0
    batch = position_stats(torch.stack([s1, d2.sum(0)]), torch.stack([s2, (d2 * d2).sum(0)]), 6)
    assert batch.shape == (2, 2, 4, 5)
    torch.testing.assert_close(batch[1], position_stats(d2.sum(0), (d2 * d2).sum(0), 6))
    torch.testing.assert_close(batch[0], position_stats(s1, s2, 6))


def test_position_norm_is_fitted_out_of_sample(tiny_data):
    """The stored cell statistics come from the good images' self-excluded distances; each image's positional
    map (whose maximum standardises the patch score) uses statistics fitted without that image."""
    from model.fit import _excluded_distances

    net, good = fit_good_only(_few(tiny_data, 5), FitOptions(input_size=64, coreset_ratio=1.0, peers=0))
    head = net.head
    assert net.config.position_norm and not net.config.peer_position and not net.config.position_map  # that needs peers
    assert good.pos_cells.shape == good.raw_cells.shape == (5, *good.first_view.shape[2:])
    cells = good.first_view.shape[2] * good.first_view.shape[3]
    source = torch.arange(head.bank.shape[0]) // cells  # all patches kept, in image order
    d = _excluded_distances(head, good.first_view, source, torch.arange(5)).double()
    torch.testing.assert_close(head.pos_stats, position_stats(d.sum(0), (d * d).sum(0), 5).float())
    for i in range(5):
        others = torch.cat([d[:i], d[i + 1 :]])
        expected = head.position_cells(d[i : i + 1].float(), position_stats(others.sum(0), (others * others).sum(0), 4).float())
        torch.testing.assert_close(good.pos_cells[i : i + 1], expected, rtol=1e-4, atol=1e-4)
    pos_max = head.to_map(good.pos_cells).flatten(1).amax(1)
    torch.testing.assert_close(head.pos_norm, torch.tensor([float(pos_max.mean()), float(pos_max.std())]))
    plain, _ = fit_good_only(_few(tiny_data, 5), FitOptions(input_size=64, coreset_ratio=1.0, position_norm=False))
    assert not plain.config.position_norm and not plain.config.position_map and not hasattr(plain.head, "pos_stats")


def test_peer_position_statistics_come_from_each_images_nearest_others(tiny_data):
    """With peers (the default) each good image's positional map uses the cell statistics of its peers
    (its nearest *other* images by the peer key), whose self-excluded distances are kept for inference."""
    from model.fit import _excluded_distances

    net, good = fit_good_only(_few(tiny_data, 5), FitOptions(input_size=64, coreset_ratio=1.0, peers=2))
    head = net.head
    assert net.config.peer_position and head.peer_position and net.config.position_map and head.position_map
    old = NetConfig.from_dict({k: v for k, v in net.config.to_dict().items() if k != "position_map"})
    assert old.peer_position and not old.position_map  # checkpoints from before it keep showing the raw map
    cells = good.first_view.shape[2] * good.first_view.shape[3]
    d = _excluded_distances(head, good.first_view, torch.arange(head.bank.shape[0]) // cells, torch.arange(5)).double()
    torch.testing.assert_close(head.peer_dist, d.float())
    torch.testing.assert_close(head.pos_stats, position_stats(d.sum(0), (d * d).sum(0), 5).float())  # kept for reference
    nearest = torch.cdist(head.peer_key, head.peer_key).fill_diagonal_(float("inf")).topk(2, largest=False).indices
    for i in range(5):
        peers = d[nearest[i]]
        expected = head.position_cells(d[i : i + 1].float(), position_stats(peers.sum(0), (peers * peers).sum(0), 2).float())
        torch.testing.assert_close(good.pos_cells[i : i + 1], expected, rtol=1e-4, atol=1e-4)
    pos_max = head.to_map(good.pos_cells).flatten(1).amax(1)
    torch.testing.assert_close(head.pos_norm, torch.tensor([float(pos_max.mean()), float(pos_max.std())]))
    for off in ({"peer_position": False}, {"position_norm": False}):
        other, _ = fit_good_only(_few(tiny_data, 5), FitOptions(input_size=64, coreset_ratio=1.0, peers=2, **off))
        assert other.config.peers == 2 and not other.config.peer_position and not hasattr(other.head, "peer_dist")
        assert not other.config.position_map


def test_references_replace_the_bank_and_score_good_images_without_themselves(tiny_data):
    """With references every good image is kept (5 <= the cap), and each is standardised by its distances to
    the other references only; a reference scores about zero against itself."""
    net, good = fit_good_only(_few(tiny_data, 5), FitOptions(input_size=64, references=8, ref_k=2))
    head = net.head
    assert net.config.references == head.references == 5 and net.config.bank_size == 0 and net.config.ref_k == 2
    emb = good.first_view.float()
    torch.testing.assert_close(head.ref_emb.float(), emb)  # all kept, in image order
    for i in range(5):
        own = (torch.arange(5) == i).unsqueeze(0)
        ref = head.reference_distances(emb[i : i + 1], head.ref_key[i : i + 1], own)
        torch.testing.assert_close(good.raw_cells[i : i + 1], ref, rtol=1e-3, atol=1e-3)
        assert float(head.reference_distances(emb[i : i + 1], head.ref_key[i : i + 1]).max()) < 1e-2
    capped, _ = fit_good_only(_few(tiny_data, 5), FitOptions(input_size=64, references=3))
    assert capped.config.references == 3 and capped.config.ref_k == 2  # one less than the references: its own is excluded
    rows = [[bool(torch.equal(r, e)) for e in good.first_view] for r in capped.head.ref_emb]
    assert all(sum(r) == 1 for r in rows) and len({r.index(True) for r in rows}) == 3  # 3 distinct training images


def test_peers_are_the_good_images_and_each_is_judged_without_itself(tiny_data):
    """The stored peers are the training images' standardised pooled statistics and out-of-sample scores;
    each image's own calibration score is offset by its nearest *other* images only."""
    data = _few(tiny_data, 5)
    net, report = fit(data, FitOptions(input_size=64, peers=2, peer_position=False))
    head, plain = net.head, fit(data, FitOptions(input_size=64, peers=0))
    assert (net.config.peers, net.config.peer_images) == (2, 5) and plain[0].config.peers == 0
    raw = torch.tensor(plain[1].scores["good"][:5])  # the same model's out-of-sample scores, before the offset
    torch.testing.assert_close(head.peer_score, raw.float(), rtol=1e-5, atol=1e-5)
    key = head.peer_key
    d = torch.cdist(key, key).fill_diagonal_(float("inf"))
    expected = raw - raw[d.topk(2, largest=False).indices].mean(1).double()
    np.testing.assert_allclose(report.scores["good"][:5], expected.numpy(), rtol=1e-4, atol=1e-4)
    assert fit_good_only(data, FitOptions(input_size=64, peers=9))[0].config.peers == 4  # capped at the others


@pytest.mark.parametrize("change, match", [
    ({"coreset_ratio": 0.0}, "--coreset"),
    ({"coreset_ratio": 1.5}, "--coreset"),
    ({"input_size": 50}, "--size"),
    ({"augment": ("rot90",)}, "--augment"),
    ({"global_weight": 2.0}, "--global-weight"),
    ({"references": 1}, "--references 1: give 0"),
    ({"references": -4}, "--references -4: give 0"),
    ({"references": 2, "augment": ("hflip",)}, "at least 3 images"),
    ({"references": 4, "defects": DefectLearning(synth=10)}, "--references with --synth"),
    ({"references": 4, "ref_k": 0}, "--ref-k 0: give at least 1"),
    ({"references": 4, "ref_radius": -1}, "--ref-radius -1: give 0 to 4"),
    ({"references": 4, "ref_radius": 5}, "--ref-radius 5: give 0 to 4"),
    ({"peers": -1}, "--peers -1: give 0"),
])
def test_bad_options_are_refused_before_any_work(tiny_data, change, match):
    with pytest.raises(InspectorError, match=match):
        fit(_few(tiny_data, 5), FitOptions(**{"input_size": 64, **change}))


def test_an_escape_target_without_defect_images_is_refused_before_any_work(tiny_data, monkeypatch):
    from model.calibration import Policy

    monkeypatch.setattr("model.fit.load_batches", lambda *a, **k: pytest.fail("fitted first"))
    data = _few(tiny_data, 5)
    with pytest.raises(InspectorError, match="calibration policy 'escape' needs defect images") as err:
        fit(data, FitOptions(input_size=64, policy=Policy("escape", 0.01)))
    assert "--escape 0.01" in str(err.value) and str(data.root) in str(err.value)  # the option and the data it lacks


def test_four_images_are_not_enough(tiny_data, tmp_path):
    with pytest.raises(InspectorError, match="4 distinct good image\\(s\\); fitting needs at least 5 \\(ideally 50\\+\\); add good images"):
        fit(_few(tiny_data, 4), FitOptions(input_size=64))
    for i, src in enumerate(sorted((tiny_data / "train" / "good").glob("*.png"))[:4]):
        (tmp_path / f"{i}.png").write_bytes(src.read_bytes())
    (tmp_path / "copy.png").write_bytes(src.read_bytes())
    with pytest.raises(InspectorError, match=r"4 distinct good image\(s\) \(1 byte-identical copies not counted\); fitting needs at least 5"):
        fit(load_dataset(tmp_path), FitOptions(input_size=64))


def test_byte_identical_copies_are_fitted_once(tiny_data, tmp_path):
    """A copied file would be its twin's nearest neighbour: both would look far more normal out-of-sample than
    any part is. It is left out, and the report names it; the model equals the one fitted without the copy."""
    import shutil

    for p in sorted((tiny_data / "train" / "good").glob("*.png"))[:5]:
        shutil.copy(p, tmp_path / p.name)
    options = FitOptions(input_size=64, coreset_ratio=0.5, peers=2)
    plain, plain_report = fit(load_dataset(tmp_path), options)
    shutil.copy(tmp_path / "001.png", tmp_path / "001_copy.png")
    net, report = fit(load_dataset(tmp_path), options)
    assert report.training["n_images"] == 5 and "copies_left_out" not in plain_report.training
    assert report.training["copies_left_out"] == [{"file": str(tmp_path / "001_copy.png"), "copy_of": str(tmp_path / "001.png")}]
    assert report.training["data_sha256"] == plain_report.training["data_sha256"] and report.thresholds == plain_report.thresholds
    sa, sb = net.state_dict(), plain.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_part_owners_leave_out_whole_parts_only_where_the_rest_still_suffice():
    from model.fit import _part_owners

    assert _part_owners(np.arange(6), peers=2) is None  # no image has another capture
    owners = _part_owners(np.array([7, 7, 3, 4, 5, 6]), peers=2)
    assert owners[0] == owners[1] and len(set(owners[1:].tolist())) == 5
    assert sorted(set(owners.tolist())) == list(range(5))  # consecutive ids
    assert _part_owners(np.array([1, 1, 1, 1, 2, 3]), peers=2) is None  # a part of more than half the images
    assert _part_owners(np.array([1, 1, 2, 3]), peers=3) is None  # the others could not give it 3 peers
    mixed = _part_owners(np.array([1, 1, 2, 2, 2, 3, 4, 5]), peers=6)  # without the 3-capture part, 5 images: fewer than 6
    assert mixed[0] == mixed[1] and len(set(mixed[2:].tolist())) == 6


@pytest.mark.parametrize("kw", [{"peers": 2}, {"peers": 0}, {"peers": 0, "position_norm": False},
                                {"peers": 0, "references": 8, "ref_k": 2}], ids=["peers", "position", "raw", "references"])
def test_calibration_scores_a_part_without_its_other_captures(tiny_data, tmp_path, kw, monkeypatch):
    """Two captures of one part in the training images: self-exclusion still compares each with the other (a
    distance near zero, an optimistic calibration score); the calibration scores each without its part, as a
    new part, in every form of the patch branch, and says how many images that concerns."""
    import shutil

    import cv2

    import model.fit

    for p in sorted((tiny_data / "train" / "good").glob("*.png"))[:6]:
        shutil.copy(p, tmp_path / p.name)
    again = cv2.imread(str(tmp_path / "000.png")).astype(np.int16) + 3  # the same part under a little more light
    cv2.imwrite(str(tmp_path / "000_again.png"), np.clip(again, 0, 255).astype(np.uint8))
    data = load_dataset(tmp_path)
    names = [s.path.name for s in data.train]
    twins = [names.index("000.png"), names.index("000_again.png")]
    options = FitOptions(input_size=64, coreset_ratio=1.0, **kw)
    seen = []

    def good_fit_checked(*args, **kwargs):
        """fit's own good-only pass, checked before fit calibrates on it (one pass, not a second one apart)."""
        net, good = real_good_only(*args, **kwargs)
        w = good.without_parts
        assert w is not None and w.images >= 2  # synthetic tiles may pair up too
        if kw["peers"]:
            assert w.peer_rows.shape == good.peer_rows.shape and twins[1] in good.peer_rows[twins[0]].tolist()
            assert not set(twins) & set(w.peer_rows[twins[0]].tolist()) and not set(twins) & set(w.peer_rows[twins[1]].tolist())
        own, alone = (net.head.to_map(m.pos_cells if m.pos_cells is not None else m.raw_cells).flatten(1).amax(1) for m in (good, w))
        assert (alone[twins] > own[twins] + 0.3).all()  # compared with the other capture, the part looked too normal (0.55-1.8 here)
        assert (w.glob_raw[twins] > good.glob_raw[twins]).all()  # the global Gaussian's fold held the other capture
        seen.append(w.images)
        return net, good

    real_good_only = model.fit.fit_good_only
    monkeypatch.setattr(model.fit, "fit_good_only", good_fit_checked)
    _, report = fit(data, options)
    monkeypatch.undo()
    assert len(seen) == 1 and f"{seen[0]} of them from parts captured more than once" in report.calibration["source"]
    _, few = fit(_few(tiny_data, 5), FitOptions(input_size=64, coreset_ratio=1.0, **kw))  # too few for the twin rule
    assert "captured more than once" not in few.calibration["source"]


def test_fits_memory_savers_compute_what_the_whole_arrays_did():
    """fit writes embeddings into one float16 buffer and works through it in chunks (1000 images: 10.7 to 4.0 GiB)."""
    g = torch.Generator().manual_seed(0)
    emb = (torch.randn(2 * CHUNK + 5, 7, 4, 3, generator=g) * 3 + 1).half()
    whole = emb[:, 2:6].float().permute(1, 0, 2, 3).reshape(4, -1).var(dim=1).sum()
    assert torch.allclose(_level_variance(emb, 2, 6), whole, rtol=1e-5)
    rows = torch.randperm(emb.shape[0] * 12, generator=g)[:50]
    assert torch.equal(patch_rows(emb, rows), emb.permute(0, 2, 3, 1).reshape(-1, 7)[rows])
    assert torch.equal(patch_rows(emb), emb.permute(0, 2, 3, 1).reshape(-1, 7))
    net = InspectorNet(NetConfig(backbone="efficientnet-lite0", input_size=(64, 64))).eval()
    dists = torch.rand(2 * CHUNK + 5, 8, 8, generator=g)
    assert torch.allclose(in_chunks(net.head.to_map, dists), net.head.to_map(dists), atol=1e-6)
    assert in_chunks(net.head.to_map, dists[:0]).shape[0] == 0


def test_fit_makes_the_good_images_maps_from_their_cells_a_chunk_at_a_time(tiny_data, monkeypatch):
    """fit keeps grid cells, not full-size maps (about 1.5 MB an image at 256 px); the scores and map maxima it
    makes from them a chunk at a time are those of the whole maps."""
    import model.fit as fit_module
    from model.fit import _fused_good, bank_maps, map_maxima

    monkeypatch.setattr(fit_module, "CHUNK", 2)
    for kw in ({"peers": 2}, {"peers": 0}, {"peers": 0, "position_norm": False}):
        net, good = fit_good_only(_few(tiny_data, 5), FitOptions(input_size=64, coreset_ratio=1.0, **kw))
        head = net.head
        assert good.raw_cells.shape == (5, *good.first_view.shape[2:])
        pos = None if good.pos_cells is None else head.to_map(good.pos_cells)
        bank, patch = head.standardise_bank(head.to_map(good.raw_cells), pos)
        torch.testing.assert_close(map_maxima(head, good.raw_cells), head.to_map(good.raw_cells).flatten(1).amax(1))
        torch.testing.assert_close(bank_maps(head, good.raw_cells, good.pos_cells, torch.tensor([3, 1]))[0], bank[[3, 1]])
        head.seg_norm, head.seg_gate = torch.tensor([0.2, 1.5, 0.5, 0.1, 2.0]), True
        seg_cells = torch.rand(5, *good.first_view.shape[2:], generator=torch.Generator().manual_seed(1))
        for seg in (None, seg_cells):
            scores, maxima = _fused_good(head, good.raw_cells, good.pos_cells, good.glob_raw, seg)
            whole_scores, whole_map = head.fuse(bank, patch, torch.from_numpy(good.glob_raw).float(), None if seg is None else head.to_map(seg))
            torch.testing.assert_close(scores, whole_scores)
            torch.testing.assert_close(maxima, whole_map.flatten(1).amax(1))
