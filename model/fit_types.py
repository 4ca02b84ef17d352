"""Fitting the defect-type head (model/types.py) on frozen, region-pooled backbone features.

The backbone and anomaly head are not changed: labelled defect images are run through them once, their
features pooled where the anomaly map is high (as at serving time; optionally only inside the labelled
mask or boxes), or over the whole image when the model has no normal reference. Masks and boxes are
always checked against their images.
Then, in closed form or a few LBFGS steps: the standardisation, a classifier (multinomial logistic
regression, or class prototypes), and the `unknown` threshold from out-of-fold scores of the examples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from model.errors import InspectorError
from model.extract import load_batches
from model.framing import crop
from model.hashing import sha256_file
from model.label_names import reserved_name, type_words
from model.labels import LabelSet, read_region
from model.net import InspectorNet
from model.progress import BarFactory, silent
from model.types import DISABLED, TypeHead, region_weights

CLASSIFIERS = ("logreg", "prototype")
REGIONS = ("auto", "map", "image")


@dataclass
class TypeOptions:
    """Type-head fitting settings (recorded in the manifest)."""

    classifier: str = "logreg"
    c: float = 30.0  # logistic regression: inverse L2 strength per example (weight decay 1 / (c * n))
    prototype_scale: float = 16.0  # prototype classifier: cosine -> logit scale
    region: str = "auto"  # map: pool where the anomaly map is high; image: whole image; auto: map if fitted on good images
    sharpness: float = 1.0  # softmax inverse temperature on the (standardised) anomaly map
    # pool the labelled examples inside their mask / boxes. Off by default: serving pools by the map alone,
    # and on magnetic tile (5-fold CV) mask-pooled training features put 58% of defects in one type (map-pooled: see docs)
    use_masks: bool = False
    unknown_rate: float = 0.05  # target share of known-type defects reported `unknown`; 0 disables `unknown`
    folds: int = 5  # out-of-fold scores for the `unknown` threshold (and the prompt weight)
    text_mix: float | None = None  # CLIP: weight of the prompt logits (None: chosen by cross-validation)
    seed: int = 0
    batch_size: int = 16

    def validate(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise InspectorError(f"type classifier {self.classifier!r}: choose one of {', '.join(CLASSIFIERS)}")
        if self.region not in REGIONS:
            raise InspectorError(f"type region {self.region!r}: choose one of {', '.join(REGIONS)}")
        if not 0.0 <= self.unknown_rate < 1.0:
            raise InspectorError(f"unknown rate {self.unknown_rate}: give a fraction in [0, 1) (0 disables `unknown`)")


@dataclass
class TypeReport:
    """What the type fit learnt besides the weights: goes into the manifest under `types`."""

    options: dict[str, Any]
    classes: list[str]
    counts: dict[str, int]
    region: str
    unknown_threshold: float | None
    cv_accuracy: float | None = None
    text_mix: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    fitted_images: list[str] = field(default_factory=list)  # sha256[:16] of each labelled image file, so eval can tell
    scores: list[float] = field(default_factory=list)  # each labelled image's anomaly score, in the same order


def has_reference(net: InspectorNet) -> bool:
    """Whether the anomaly head was fitted on good images (so its map says where a defect is)."""
    if net.config.references:
        return bool(net.head.ref_emb.abs().sum() > 0)
    return net.config.bank_size > 0 and bool(net.head.bank.abs().sum() > 0)


@dataclass
class TypeFeatures:
    """Raw pooled features [N, 4D] of labelled images and, with CLIP, their joint-space embeddings [N, E]."""

    raw: torch.Tensor
    image_emb: torch.Tensor | None = None
    scores: torch.Tensor | None = None  # [N] the images' anomaly scores, as inspection gives them


def _mask_weights(region: np.ndarray | None, grid: tuple[int, int], map_w: torch.Tensor) -> torch.Tensor:
    """Map weights [N] restricted to a labelled region (resized to the grid); the map's own where it has none."""
    if region is None or not region.any():
        return map_w
    cover = cv2.resize(region.astype(np.float32), (grid[1], grid[0]), interpolation=cv2.INTER_AREA)
    w = map_w * torch.from_numpy(cover).flatten()
    return w / w.sum() if float(w.sum()) > 1e-8 else map_w


@torch.no_grad()
def extract_features(net: InspectorNet, head: TypeHead, labels: LabelSet, use_masks: bool = True,
                     batch_size: int = 16, progress: BarFactory = silent) -> TypeFeatures:
    """Run the labelled images through the frozen network and pool them as `head` pools (its mix, sharpness)."""
    size, framing = tuple(net.config.input_size), net.config.framing
    raws, embs, scores = [], [], []
    bar = progress("type features", len(labels.items))
    for idx, batch, rgbs, located in load_batches([it.path for it in labels.items], size, batch_size, framing=framing):
        feats = net.features(torch.from_numpy(batch))
        score, amap = net.head(feats)[:2]
        scores.append(score)
        emb = net.head.embed(feats)
        weights = tok_weights = None
        if use_masks and float(head.mix) > 0:
            grid, tgrid = tuple(emb.shape[-2:]), tuple(feats[-1].shape[-2:])
            map_w = region_weights(amap, grid, head.mix, head.sharpness)
            tok_w = region_weights(amap, tgrid, head.mix, head.sharpness)
            regions = [read_region(labels.items[i], rgb.shape[:2]) for i, rgb in zip(idx, rgbs, strict=True)]
            regions = [None if r is None else crop(r, box) for r, (box, _) in zip(regions, located, strict=True)]
            weights = torch.stack([_mask_weights(r, grid, w) for r, w in zip(regions, map_w, strict=True)])
            tok_weights = torch.stack([_mask_weights(r, tgrid, w) for r, w in zip(regions, tok_w, strict=True)])
        else:
            for i, rgb in zip(idx, rgbs, strict=True):
                read_region(labels.items[i], rgb.shape[:2])  # still check masks and boxes fit their images
        raws.append(head.pooled(emb, amap, weights))
        if head.has_text:
            embs.append(head.image_embedding(feats[-1], amap, tok_weights))
        bar.update(len(idx))
    bar.close()
    return TypeFeatures(torch.cat(raws), torch.cat(embs) if embs else None, torch.cat(scores))


# -- classifier ------------------------------------------------------------------------------------------
def _standardiser(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = raw.mean(dim=0)
    var = raw.var(dim=0, unbiased=False) if raw.shape[0] > 1 else torch.zeros_like(mean)
    # shrink each channel's variance towards the average one: few examples give noisy per-channel spreads
    return mean, (var + 0.1 * var.mean() + 1e-8).sqrt()


def _logreg(z: torch.Tensor, y: torch.Tensor, k: int, l2: float, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression (L2 on W), full-batch LBFGS in float64. `extra`: fixed logits [N, K]."""
    z64 = z.double()
    w = torch.zeros(k, z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=200, history_size=20, line_search_fn="strong_wolfe")
    fixed = extra.double() if extra is not None else 0.0

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z64 @ w.t() + b + fixed, y) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach().float(), b.detach().float()


def _classifier(z: torch.Tensor, y: torch.Tensor, k: int, options: TypeOptions,
                extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    if options.classifier == "logreg":
        return _logreg(z, y, k, 1.0 / (options.c * z.shape[0]), extra)
    means = torch.zeros(k, z.shape[1])
    means.index_add_(0, y, z)
    means = means / means.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return options.prototype_scale * means, torch.zeros(k)


def _folds(y: torch.Tensor, k: int, folds: int, seed: int) -> tuple[torch.Tensor, int]:
    """Stratified fold index of each example, and the number of folds (0 when a type has a single example)."""
    n = min(folds, int(torch.bincount(y, minlength=k).min()))
    fold = torch.empty_like(y)
    g = torch.Generator().manual_seed(seed)
    for c in range(k):
        idx = (y == c).nonzero().squeeze(1)
        fold[idx[torch.randperm(idx.numel(), generator=g)]] = torch.arange(idx.numel()) % max(n, 1)
    return fold, (n if n >= 2 else 0)


def _out_of_fold_logits(z: torch.Tensor, y: torch.Tensor, k: int, options: TypeOptions,
                        extra: torch.Tensor | None) -> torch.Tensor | None:
    """Logits of each example from a classifier fitted without its fold (None if a type has one example)."""
    fold, n = _folds(y, k, options.folds, options.seed)
    if n == 0:
        return None
    out = torch.empty(z.shape[0], k)
    for f in range(n):
        tr, te = fold != f, fold == f
        w, b = _classifier(z[tr], y[tr], k, options, None if extra is None else extra[tr])
        out[te] = z[te] @ w.t() + b + (0.0 if extra is None else extra[te])
    return out


def _unknown(oof: torch.Tensor | None, options: TypeOptions) -> tuple[float, float]:
    """Threshold and spread on u = -(max logit): the (1 - unknown_rate) quantile of the examples' out-of-fold u."""
    if options.unknown_rate <= 0 or oof is None:
        return DISABLED, 1.0
    u = (-oof.amax(dim=1)).numpy()
    thr = float(np.quantile(u, 1.0 - options.unknown_rate))
    return thr, max(float(np.std(u)) * 0.1, 1e-3)


@torch.no_grad()
def fit_head(head: TypeHead, feats: TypeFeatures, y: torch.Tensor, options: TypeOptions) -> dict[str, Any]:
    """Fill `head`'s buffers from pooled features of labelled examples (class indices `y`, all K present)."""
    k = head.weight.shape[0]
    if sorted(y.unique().tolist()) != list(range(k)):
        raise InspectorError(f"type fit: {k} types but examples of only {y.unique().numel()}; every type needs an example")
    head.f_mean, head.f_scale = _standardiser(feats.raw)
    z = head.normalise(feats.raw)
    info: dict[str, Any] = {}
    text_logits = None
    if head.has_text and feats.image_emb is not None:
        text_logits = head.text_mix[1] * feats.image_emb @ head.text_weights.t()
        mix = options.text_mix if options.text_mix is not None else _choose_text_mix(z, y, k, text_logits, options)
        head.text_mix[0] = mix
        info["text_mix"] = mix
        text_logits = mix * text_logits
    head.weight, head.bias = _classifier(z, y, k, options, text_logits)
    oof = _out_of_fold_logits(z, y, k, options, text_logits)
    thr, spread = _unknown(oof, options)
    head.unknown = torch.tensor([thr, spread])
    info["unknown_threshold"] = None if thr >= DISABLED else round(thr, 6)
    info["cv_accuracy"] = None if oof is None else round(float((oof.argmax(1) == y).float().mean()), 4)
    return info


def _choose_text_mix(z: torch.Tensor, y: torch.Tensor, k: int, text_logits: torch.Tensor, options: TypeOptions) -> float:
    """Weight of the prompt logits next to the fitted classifier: best out-of-fold accuracy (ties: more text)."""
    best, best_acc = 1.0, -1
    for mix in (1.0, 0.5, 0.25, 0.0):
        oof = _out_of_fold_logits(z, y, k, options, mix * text_logits)
        if oof is None:
            return 1.0  # a type with one example: trust the prompts
        correct = int((oof.argmax(1) == y).sum())
        if correct > best_acc:
            best, best_acc = mix, correct
    return best


# -- the whole step --------------------------------------------------------------------------------------
def resolve_region(net: InspectorNet, region: str) -> str:
    if region == "auto":
        return "map" if has_reference(net) else "image"
    if region == "map" and not has_reference(net):
        raise InspectorError("type region 'map' needs a model fitted on good images (its anomaly map); use 'image'")
    return region


def install_head(net: InspectorNet, classes: list[str], region: str = "auto",
                 text_weights: torch.Tensor | None = None) -> tuple[TypeHead, str]:
    """(Re)build the net's type head for these classes, pooling over `region` (resolved: "map" or "image") and,
    given CLIP prompt embeddings [K, E], with prompt logits. The config records what is needed to rebuild it.
    -> (head, resolved region)."""
    if reserved := reserved_name(classes):  # `unknown_` reads as `unknown`
        raise InspectorError(f"labels: a type may not be called {type_words(reserved)!r}, in any case, _ as a space (given as "
                             f"{reserved!r}); rename it")
    region = resolve_region(net, region)
    net.config.class_names = list(classes)
    net.config.type_text_dim = 0 if text_weights is None else int(text_weights.shape[1])
    head = net.types = net.build_types()
    head.mix = torch.tensor(1.0 if region == "map" else 0.0)
    if text_weights is not None:
        set_clip_projection(net, head, text_weights)
    return head, region


@torch.no_grad()
def fit_types(net: InspectorNet, labels: LabelSet, options: TypeOptions | None = None, progress: BarFactory = silent,
              text_weights: torch.Tensor | None = None) -> TypeReport:
    """Add a fitted type head to `net` for `labels`' types. `text_weights` [K, E]: CLIP prompt embeddings."""
    options = options or TypeOptions()
    options.validate()
    counts = labels.counts()
    head, region = install_head(net, labels.types, options.region, text_weights)
    head.sharpness = torch.tensor(float(options.sharpness))
    feats = extract_features(net, head, labels, options.use_masks, options.batch_size, progress)
    y = torch.from_numpy(labels.targets)
    info = fit_head(head, feats, y, options)
    return TypeReport(options=asdict(options), classes=list(labels.types), counts=counts, region=region,
                      unknown_threshold=info["unknown_threshold"], cv_accuracy=info["cv_accuracy"],
                      text_mix=info.get("text_mix"), fitted_images=[sha256_file(it.path)[:16] for it in labels.items],
                      scores=[round(float(s), 6) for s in feats.scores])


def set_clip_projection(net: InspectorNet, head: TypeHead, text_weights: torch.Tensor) -> None:
    """Copy the CLIP image tower's final norm and projection, and the prompt embeddings, into the head."""
    visual = getattr(getattr(net.backbone, "clip", None), "visual", None)
    if visual is None:
        raise InspectorError(f"prompt (text) type weights need the clip backbone; this model uses {net.config.backbone}")
    head.ln_weight = visual.ln_post.weight.detach().clone().float()
    head.ln_bias = visual.ln_post.bias.detach().clone().float()
    head.proj = visual.proj.detach().clone().float()
    head.text_weights = text_weights.detach().clone().float()
    head.text_mix = torch.tensor([1.0, float(net.backbone.clip.logit_scale.detach().exp().clamp(max=100.0))])


@torch.no_grad()
def fit_zero_shot(net: InspectorNet, types: list[str], text_weights: torch.Tensor, region: str = "auto") -> TypeReport:
    """A type head that names defects from words alone (CLIP prompt ensembles); no `unknown` without examples."""
    _, region = install_head(net, list(types), region, text_weights)
    return TypeReport(options={"zero_shot": True}, classes=list(types), counts=dict.fromkeys(types, 0), region=region,
                      unknown_threshold=None, text_mix=1.0)


SHOTS_HINT = 5  # examples per type a hint suggests to `eval --shots` where every type has more


def most_shots(counts: dict[str, int], least: int = 1) -> int | None:
    """The largest `--shots` up to SHOTS_HINT that types with these numbers of images allow (each keeps one to score);
    None where a type has too few for `least` shots."""
    k = min(SHOTS_HINT, min(counts.values(), default=SHOTS_HINT + 1) - 1)
    return k if k >= least else None


def shots_command(model: str, data: str | Path) -> str:
    """`inspector eval MODEL DATA --shots K`, with K that DATA's types allow: hints said `--shots 5` to a folder whose
    type had 2 images, and the eval they suggested refused it. Types too small for any K are named."""
    from model.images import hidden_folder, list_images
    from model.label_names import GOOD

    root = Path(data)
    try:  # an MVTec AD layout's test/<type> folders, as load_labels reads them
        types = root / "test" if (root / "test").is_dir() and any(d.is_dir() for d in (root / "test").iterdir()) else root
        counts = {d.name: len(list_images(d)) for d in sorted(types.iterdir())
                  if d.is_dir() and not hidden_folder(d.name) and d.name.lower() != GOOD}
    except OSError:  # the hint is no place to fail: eval says what is wrong with the folder
        counts = {}
    counts = {t: n for t, n in counts.items() if n}  # an empty folder is refused by eval in words of its own
    k = most_shots(counts)
    command = f"`inspector eval {model} {data} --shots {k or 1}`"
    if k is None:
        short = [t for t, n in counts.items() if n < 2]
        command += f" (once {', '.join(short)} {'has' if len(short) == 1 else 'have'} 2 images or more: one to fit, one to score)"
    return command
