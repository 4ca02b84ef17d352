"""Learning what defects look like from generated ones, on frozen features.

The learnt branch is either a network that sees the whole image (`ContextSegmenter`, the default), trained
on the generated images' embedding maps and masks, or a per-patch classifier, whose positives come from
pixel-space synthetic defects (model/synth), optionally multiplied by the feature-space flow generator
(model/flow.py), or, as the common baseline, from good patches plus Gaussian noise. Only the branch's excess
over what most held-out good pixels show (GATE_QUANTILE) is blended into the memory-bank map: below that it
knows nothing the bank does not, and blending it whole blurred the thin defects the bank finds (magnetic
tile cracks 0.90 -> 0.86 pixel AUROC). The weight is fixed (BLEND), or chosen on generated validation
defects made on held-out good images (`blend=None`); never on real defects. Generated defects are easy for a
branch trained on generated defects, even of other types, so that choice favours the learnt map more than
real defects bear.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from model.errors import InspectorError
from model.head import ContextSegmenter, mix, seg_classifier
from model.metrics import average_precision, roc_auc
from model.net import InspectorNet
from model.progress import BarFactory, silent
from model.synth import REGION_TYPES, check_types, donor_index, draw, synthesize

ALPHAS = (0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9)
DEFAULT_SYNTH = 1000  # `inspector fit`'s generated defect images (the library's DefectLearning() stays good-only)
BLEND = 0.5  # the learnt map's default weight: its excess (see GATE_QUANTILE) counts as much as the memory bank
GATE_QUANTILE = 0.9  # the learnt map adds to the bank's only above what this share of good pixels show
POSITIVE_COVER = 0.3  # a patch is a defect patch when the mask covers at least this fraction of it
MAX_NORMAL_ROWS = 200_000  # normal patches kept from the generated images (the good images add their own)
HEADS = ("context", "patch")
CONTEXT_WIDTH = 64


@dataclass
class DefectLearning:
    """How to learn from generated defects (all off by default: a good-only model)."""

    synth: int = 0  # pixel-space synthetic defect images to train on
    types: tuple[str, ...] = ()  # synthetic defect types (default: the region types for the context head, else all)
    feature_synth: bool = False  # add flow-generated defect features
    noise: bool = False  # baseline: positives are good patches plus Gaussian noise
    noise_scale: float = 1.0  # noise std per dimension, relative to the features' own std
    head: str = "context"  # the learnt branch: "context" (sees the whole image) or "patch" (one patch at a time)
    hidden: int = 256  # the per-patch classifier's width
    steps: int = 1500
    flow_steps: int = 1500
    flow_factor: float = 2.0  # generated features per synthetic defect feature
    blend: float | None = BLEND  # weight of the learnt map in the blend; None: chosen on generated validation defects

    @property
    def enabled(self) -> bool:
        return self.synth > 0 or self.noise

    def validate(self) -> None:
        if self.synth < 0:
            raise InspectorError(f"--synth {self.synth}: give a number of synthetic defect images (0 = none)")
        if self.steps < 1:
            raise InspectorError(f"--synth-steps {self.steps}: give a positive number of training steps (default {DefectLearning.steps})")
        if self.feature_synth and self.synth < 1:
            raise InspectorError("--feature-synth learns from synthetic defect features: add --synth N (e.g. --synth 300)")
        check_types(self.types)
        if self.head not in HEADS:
            raise InspectorError(f"--synth-head {self.head}: choose {' or '.join(HEADS)}")
        if self.head == "context" and (self.feature_synth or self.noise):
            raise InspectorError("generated defect features are single patches, which only the per-patch branch learns from: "
                                 "add --synth-head patch")
        if self.blend is not None and not 0.0 <= self.blend <= 1.0:
            raise InspectorError(f"--blend {self.blend}: give the learnt map's weight, from 0 to 1")


def _synthesize_set(rgbs: np.ndarray, n: int, types: tuple[str, ...], seed: int,
                    made: Callable[[int], None] = lambda _: None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n defect images on the given good images -> (images uint8 [n,H,W,3], masks bool [n,H,W], type index [n]);
    `made(1)` after each."""
    imgs, masks, kinds = [], [], []
    for i in range(n):
        rng, pick, sev = draw(seed, i, len(rgbs))
        k = i % len(types)
        d = donor_index(len(rgbs), pick, types[k], rng)
        # the core masks it was tuned on (see synthesize): exact ones add the faint rim to the defect cells
        img, mask = synthesize(rgbs[pick], types[k], rng, sev, donor=None if d is None else rgbs[d], exact=False)
        imgs.append(img)
        masks.append(mask)
        kinds.append(k)
        made(1)
    return np.stack(imgs), np.stack(masks), np.array(kinds)


@torch.no_grad()
def _feature_batches(net: InspectorNet, imgs: np.ndarray, batch: int = 16) -> Iterator[tuple[slice, list[torch.Tensor], torch.Tensor]]:
    """Features of uint8 images [n,H,W,3], a batch at a time: (which images, backbone maps, embeddings [b,D,gh,gw]).

    Never all at once: every image's embedding map costs GBs for a thousand generated images.
    """
    for s in range(0, len(imgs), batch):
        feats = net.features(torch.from_numpy(imgs[s : s + batch]).permute(0, 3, 1, 2).float() / 255.0)
        yield slice(s, s + batch), feats, net.head.embed(feats)


def _cover(masks: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """Fraction of each grid cell the mask covers [n, gh, gw]."""
    return torch.from_numpy(np.stack([cv2.resize(m.astype(np.float32), (grid[1], grid[0]), interpolation=cv2.INTER_AREA) for m in masks]))


def _rows(emb: torch.Tensor) -> torch.Tensor:
    return emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1]).float()


def _patch_rows(net: InspectorNet, imgs: np.ndarray, masks: np.ndarray, kinds: np.ndarray, grid: tuple[int, int],
                seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Embed generated defect images batch by batch -> (defect patch rows, normal patch rows, defect rows' type).

    Only the rows training uses are kept, and at most MAX_NORMAL_ROWS normal ones (a random share of each
    batch): holding every image's embedding map and its copies got `--synth 2000` killed at 24 GB (256 px).
    """
    keep = min(1.0, MAX_NORMAL_ROWS / (len(imgs) * grid[0] * grid[1]))
    gen = torch.Generator().manual_seed(seed)
    pos, neg, types = [], [], []
    for part, _, emb in _feature_batches(net, imgs):
        rows = _rows(emb)
        cover = _cover(masks[part], grid).reshape(-1)
        hit = cover >= POSITIVE_COVER
        pos.append(rows[hit])
        types.append(torch.from_numpy(kinds[part]).repeat_interleave(grid[0] * grid[1])[hit])
        normal = (cover == 0) & (torch.rand(cover.shape, generator=gen) < keep)
        neg.append(rows[normal])
    return torch.cat(pos), torch.cat(neg), torch.cat(types)


def _train_classifier(pos: torch.Tensor, neg: torch.Tensor, hidden: int, steps: int, seed: int) -> torch.nn.Sequential:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    mlp = torch.nn.Sequential(torch.nn.Linear(pos.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    opt = torch.optim.AdamW(mlp.parameters(), lr=1e-3, weight_decay=1e-4)
    half = 256
    with torch.enable_grad():
        for _ in range(steps):
            x = torch.cat([pos[torch.randint(0, pos.shape[0], (half,), generator=gen)],
                           neg[torch.randint(0, neg.shape[0], (half,), generator=gen)]])
            y = torch.cat([torch.ones(half), torch.zeros(half)])
            loss = F.binary_cross_entropy_with_logits(mlp(x).flatten(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    # trained as linear layers (faster on vectors), run as 1x1 convolutions over the embedding map
    clf = seg_classifier(pos.shape[1], hidden)
    with torch.no_grad():
        for conv, lin in ((clf[0], mlp[0]), (clf[2], mlp[2])):
            conv.weight.copy_(lin.weight[:, :, None, None])
            conv.bias.copy_(lin.bias)
    return clf.eval()


def _context_cells(net: InspectorNet, seg: ContextSegmenter, imgs: np.ndarray, masks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated images -> the context network's input cells [n, D, h, w] (half) and the masks' cover of each [n, h, w]."""
    cells, covers = [], []
    for part, _, emb in _feature_batches(net, imgs):
        x = seg.prepare(emb)
        cells.append(x.half())
        covers.append(_cover(masks[part], tuple(x.shape[-2:])))
    return torch.cat(cells), torch.cat(covers)


def _train_context(seg: ContextSegmenter, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int, batch: int = 32,
                   tick: Callable[[int], None] = lambda n: None) -> None:
    """Fit `seg` to the cells' defect cover (soft targets) with random left-right flips; x [n, D, h, w], y [n, h, w].
    `tick(1)` after each step: the default fit spends most of its time here."""
    gen = torch.Generator().manual_seed(seed)
    seg.to(memory_format=torch.channels_last)  # NHWC: oneDNN's convolutions are faster in it on CPU
    opt = torch.optim.AdamW(seg.parameters(), lr=1e-3, weight_decay=1e-2)
    seg.train()
    with torch.enable_grad():
        for _ in range(steps):
            i = torch.randint(0, x.shape[0], (batch,), generator=gen)
            xb, yb = x[i].float(), y[i]
            if torch.rand(1, generator=gen).item() < 0.5:
                xb, yb = xb.flip(-1), yb.flip(-1)
            logits = seg.train_logits(xb.contiguous(memory_format=torch.channels_last))
            loss = F.binary_cross_entropy_with_logits(logits.squeeze(1), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tick(1)
    seg.eval()


def _learn_context(net: InspectorNet, good_emb: torch.Tensor, imgs: np.ndarray, masks: np.ndarray, steps: int,
                   seed: int, tick: Callable[[int], None]) -> dict:
    """Train the whole-image branch on the generated images and the good ones (all cells normal); install it."""
    torch.manual_seed(seed)
    seg = ContextSegmenter(good_emb.shape[1], CONTEXT_WIDTH)
    good = torch.cat([seg.prepare(good_emb[s : s + 16].float()) for s in range(0, good_emb.shape[0], 16)])
    std = good.std(dim=(0, 2, 3))
    seg.loc, seg.scale = good.mean(dim=(0, 2, 3)), std.clamp_min(1e-3 * float(std.mean()))
    cells, cover = _context_cells(net, seg, imgs, masks)
    if not (cover >= POSITIVE_COVER).any():  # it learnt "no defect anywhere" and was blended in at 0.9
        raise InspectorError(f"--synth: none of the {len(imgs)} generated defects covers {POSITIVE_COVER:.0%} of a cell of the whole-image "
                             f"branch ({cover.shape[-2]}x{cover.shape[-1]} cells): they are too thin for it; generate region-sized "
                             "types (--synth-types transplant, the default; or stain, texture), or use --synth-head patch")
    x = torch.cat([good.half(), cells])
    y = torch.cat([torch.zeros(good.shape[0], *good.shape[-2:]), cover])
    _train_context(seg, x, y, steps, seed, tick=tick)
    net.head.seg = seg
    net.config.seg_hidden, net.config.seg_context = CONTEXT_WIDTH, True
    return {"training_images": int(x.shape[0]), "defect_cells": int((cover >= POSITIVE_COVER).sum())}


def _learn_patches(net: InspectorNet, good_emb: torch.Tensor, generated: tuple | None, options: DefectLearning,
                   n_types: int, seed: int) -> dict:
    """Train the per-patch classifier on generated defect patches (and flow features or noise, if asked); install it.

    good_emb: the good images it may learn from (not the held-out ones)."""
    neg = [_rows(good_emb)]
    pos, pos_types, summary = [], [], {}
    if generated is not None:
        rows_pos, rows_neg, kinds_pos = _patch_rows(net, *generated, tuple(good_emb.shape[-2:]), seed)
        if not rows_pos.shape[0]:
            raise InspectorError(f"--synth {options.synth}: no generated defect covers a whole feature patch at this input size; "
                                 "make more (--synth) or use a larger --size")
        pos.append(rows_pos)
        pos_types.append(kinds_pos)
        neg.append(rows_neg)
    if options.feature_synth:
        from model.flow import FeatureFlow

        real, labels = torch.cat(pos), torch.cat(pos_types)
        flow = FeatureFlow(real.shape[1], n_types, seed=seed)
        losses = flow.train(real, labels, steps=options.flow_steps)
        m = int(options.flow_factor * real.shape[0])
        pick = torch.randint(0, real.shape[0], (m,), generator=torch.Generator().manual_seed(seed))
        pos.append(flow.sample(m, labels[pick]))
        summary["flow"] = {"trained_on": int(real.shape[0]), "generated": m, "final_loss": round(float(np.mean(losses[-100:])), 4)}
    if options.noise:
        goods = neg[0]
        pick = torch.randint(0, goods.shape[0], (max(4096, sum(p.shape[0] for p in pos)),), generator=torch.Generator().manual_seed(seed))
        pos.append(goods[pick] + torch.randn(pick.numel(), goods.shape[1]) * goods.std(0) * options.noise_scale)
        summary["noise_scale"] = options.noise_scale
    pos_t, neg_t = torch.cat(pos), torch.cat(neg)
    net.head.seg = _train_classifier(pos_t, neg_t, options.hidden, options.steps, seed)
    net.config.seg_hidden, net.config.seg_context = options.hidden, False
    return {**summary, "positives": int(pos_t.shape[0]), "negatives": int(neg_t.shape[0])}


def _choose_blend(net: InspectorNet, good_zs: torch.Tensor, good_zb: torch.Tensor, val_imgs: np.ndarray,
                  val_masks: np.ndarray) -> tuple[float, dict]:
    """The ALPHAS weight with the best pixel AP plus image AUROC on held-out good and generated validation images."""
    head = net.head
    val_z, val_seg = [], []
    for _, feats, emb in _feature_batches(net, val_imgs):  # so the patch distances are never all in memory either
        val_z.append(head.bank_branch(feats, emb)[0])
        val_seg.append(head.seg_map(emb))
    zs = torch.cat([good_zs, head.seg_evidence(torch.cat(val_seg))])
    zb = torch.cat([good_zb, *val_z])
    n_good = good_zs.shape[0]
    masks = np.concatenate([np.zeros((n_good, *val_masks.shape[1:]), bool), val_masks])
    labels = np.r_[np.zeros(n_good), np.ones(len(val_imgs))]
    table = {}
    for a in ALPHAS:
        mixed = mix(zb, zs, a)
        table[a] = (average_precision(masks.ravel(), mixed.numpy().ravel()), roc_auc(labels, mixed.flatten(1).amax(1).numpy()))
    return max(ALPHAS, key=lambda a: sum(table[a])), table


@torch.no_grad()
def learn_defects(net: InspectorNet, good_rgbs: np.ndarray, good_emb: torch.Tensor,
                  good_zmaps: Callable[[torch.Tensor], torch.Tensor],
                  options: DefectLearning, seed: int = 0, progress: BarFactory = silent) -> dict:
    """Train and install the learnt branch of `net.head`.

    good_rgbs: good training images at the input size [n,H,W,3] uint8; good_emb: their embeddings [n,D,gh,gw];
    good_zmaps: rows [k] (of the n) -> their out-of-sample patch-branch maps as the head shows them
    (`standardise_bank`) [k,H,W], made on demand (all n at once would be 256 KB an image at 256 px).
    Returns a summary for the manifest.
    """
    options.validate()
    t0 = time.perf_counter()
    head = net.head
    n = len(good_rgbs)  # at least model.fit.MIN_GOOD: one held out in every five
    held = np.arange(n) % 5 == 0
    if held.sum() < 2:  # of 5 images one alone: the spread of one map's maximum is NaN, and so was every score
        held[n // 2] = True
    held_idx = torch.from_numpy(held)
    # The whole-image branch is there for what no patch shows, a region unlike the rest of the part; small local
    # defects are the memory bank's, and training it on them as well cost real cracks (0.86 -> 0.79 pixel AUROC).
    types = check_types(options.types) if options.types or options.head == "patch" else tuple(sorted(REGION_TYPES))
    choose = options.blend is None
    # Validation defects are of types the branch never trains on: the blend weight must reward what
    # generalises to unseen kinds of defect (as real ones are), not how well it learnt the generator.
    val_types = (types[1::3] if len(types) >= 3 else types) if choose else ()
    train_types = tuple(t for t in types if t not in val_types) or types

    summary: dict = {"synth_images": options.synth, "head": options.head, "train_types": list(train_types),
                     "held_out_good": int(held.sum())}
    n_val = max(8, (options.synth or 64) // 4) if choose else 0
    # a bar of its own: the default's 1,000 images took 15-80 s, in which a log (one line each 30 s) heard nothing
    made = progress("generating defects (images)", n_val + options.synth)
    if choose:
        val_imgs, val_masks, _ = _synthesize_set(good_rgbs[held], n_val, val_types, seed + 1, made.update)
        summary.update(val_types=list(val_types), val_images=n_val)
    generated = _synthesize_set(good_rgbs[~held], options.synth, train_types, seed, made.update) if options.synth else None
    made.close()
    train_units = options.steps if options.head == "context" else 1
    bar = progress("learning from generated defects (steps)", train_units + 1)
    if head.keep is not None:  # the graph hides don't-care pixels (--ignore): a defect drawn there is not to be found
        inspected = head.keep.numpy() > 0.5
        if choose:
            val_masks &= inspected
        if generated is not None:
            generated[1][...] &= inspected
    if options.head == "context":
        summary.update(_learn_context(net, good_emb[~held_idx], *generated[:2], options.steps, seed, bar.update))
    else:
        summary.update(_learn_patches(net, good_emb[~held_idx], generated, options, len(train_types), seed))
        bar.update(1)
    # Standardise the learnt map on held-out good images: its scale is the spread of their maxima, and it counts
    # from the level GATE_QUANTILE of their pixels stay under; then (if asked) choose the blend weight.
    seg_good = head.seg_map(good_emb[held_idx].float())
    seg_max = seg_good.flatten(1).amax(1)
    gate = float(np.quantile(seg_good.numpy().ravel(), GATE_QUANTILE))
    head.seg_norm = torch.tensor([gate, max(float(seg_max.std()), 1e-6), 0.0, 0.0, 1.0])
    head.seg_gate = net.config.seg_gate = True
    zs, zb = head.seg_evidence(seg_good), good_zmaps(held_idx)
    alpha = options.blend
    if choose:
        alpha, table = _choose_blend(net, zs, zb, val_imgs, val_masks)
        summary["validation"] = {str(a): {"pixel_ap": round(p, 4), "image_auroc": round(r, 4)} for a, (p, r) in table.items()}
    mixed_good = mix(zb, zs, alpha).flatten(1).amax(1)
    head.seg_norm[2:] = torch.tensor([alpha, float(mixed_good.mean()), max(float(mixed_good.std()), 1e-6)])
    bar.update(1)
    bar.close()
    summary.update(alpha=alpha, alpha_from="validation" if choose else "fixed", seconds=round(time.perf_counter() - t0, 1))
    return summary
