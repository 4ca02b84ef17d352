"""The whole scoring graph: image batch -> (image score, anomaly map). One module, so it exports whole."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from model.backbones import DEFAULT_BACKBONE, build_backbone, default_layers
from model.framing import Framing
from model.head import AnomalyHead
from model.types import TypeHead


@dataclass
class NetConfig:
    """Everything needed to rebuild the graph before loading its tensors (stored in the manifest)."""

    backbone: str = DEFAULT_BACKBONE
    layers: tuple[int, ...] = ()
    input_size: tuple[int, int] = (256, 256)
    grid_stride: int = 8
    sigma: float = 4.0
    bank_size: int = 0
    neighbours: int = 1  # bank patches whose distances are averaged (model/head.py); older checkpoints: 1
    global_levels: int = 2
    global_weight: float = 0.5
    normalize_input: bool = True
    position_norm: bool = False  # patch score standardised per grid cell (see model/head.py); older checkpoints: False
    position_map: bool = False  # with peer_position, the map is standardised so too (model/head.py); older checkpoints: False
    references: int = 0  # > 0: reference images stored for the patch branch instead of a coreset bank (model/head.py)
    ref_k: int = 10
    ref_radius: int = 1
    peers: int = 0  # > 0: the score is offset by that many most similar training images' scores (model/head.py)
    peer_images: int = 0  # training images stored for that
    peer_position: bool = False  # position normalisation from those images' patch distances (model/head.py)
    seg_hidden: int = 0  # > 0: a learnt defect-classifier branch (trained on generated defects) of this width
    seg_context: bool = False  # that branch sees the whole image (model/head.py ContextSegmenter), not one patch
    seg_gate: bool = False  # only its excess over good pixels is blended in (model/head.py); older checkpoints: False
    class_names: list[str] = field(default_factory=list)  # known defect types: non-empty adds the type head
    type_text_dim: int = 0  # CLIP joint-space width when the type head has prompt (text) weights
    roi: tuple[int, int, int, int] | None = None  # the part of each image the graph is given (model/framing.py)
    locate: int = 0  # > 0: that region follows the part, found within this many px by `locator` (model/framing.py)
    locator: dict = field(default_factory=dict)  # the template and how it is matched
    ignore: dict = field(default_factory=dict)  # don't-care regions the graph hides (model/ignore.py, model/framing.py)
    turn: float = 0.0  # > 0: with `locate`, the region turns with the part within this many degrees (model/framing.py)
    fill_around: bool = False  # `ignore` is filled from the pixels around it; False: the rest's mean colour (older models)
    # CLIP: an input side that is no multiple of the ViT's patch (ViT-*-14 at 256 px) is resized to whole patches, so that
    # the tokens cover the image (model/backbones.py); None: as the backbone needs; older checkpoints: False, the rest unseen
    whole_patches: bool | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"], d["input_size"] = list(self.layers), list(self.input_size)
        # left out when unused, so that a version without them still reads the checkpoint; with them it refuses it
        # (unknown fields) rather than judge whole frames
        for name, unused in (("roi", None), ("locate", 0), ("locator", {}), ("ignore", {}), ("turn", 0.0),
                             ("fill_around", False)):
            if d[name] == unused:
                del d[name]
        if not self.whole_patches:
            del d["whole_patches"]
        if self.roi is not None:
            d["roi"] = list(self.roi)
        return d

    @property
    def framing(self) -> Framing:
        return Framing.of(self)

    @classmethod
    def from_dict(cls, d: dict) -> NetConfig:
        d = dict(d)
        # Checkpoints written before input standardisation existed were fitted without it.
        d.setdefault("normalize_input", False)
        d.setdefault("whole_patches", False)  # nor were patches of CLIP models made whole before
        d["layers"], d["input_size"] = tuple(d["layers"]), tuple(d["input_size"])
        if d.get("roi") is not None:
            d["roi"] = Framing.of(d).roi
        return cls(**d)


class InspectorNet(nn.Module):
    """x: float32 RGB [B, 3, H, W] in [0, 1] at `input_size` -> (score [B], anomaly map [B, H, W])."""

    def __init__(self, config: NetConfig, load_weights: bool = True, init_weights: bool = True) -> None:
        super().__init__()
        if not config.layers:
            config.layers = default_layers(config.backbone)
        self.backbone = build_backbone(config.backbone, config.layers or None, load_weights=load_weights, init_weights=init_weights)
        # NHWC weights: oneDNN's batched convolutions take about a third less time for the same values; loading
        # a checkpoint copies into them, and saving writes the usual contiguous layout
        self.backbone.to(memory_format=torch.channels_last)
        config.layers = tuple(self.backbone.layers)
        cuts = getattr(self.backbone, "cuts", None)
        if config.whole_patches is None:
            config.whole_patches = bool(cuts and cuts(config.input_size))
        if cuts:
            self.backbone.whole_patches = bool(config.whole_patches)
        self.config = config
        info = self.backbone.info
        self.head = AnomalyHead(info.channels, config.input_size, max(config.bank_size, 1), grid_stride=config.grid_stride,
                                sigma=config.sigma, global_levels=config.global_levels, global_weight=config.global_weight,
                                seg_hidden=config.seg_hidden, seg_context=config.seg_context, seg_gate=config.seg_gate,
                                position_norm=config.position_norm, position_map=config.position_map,
                                references=config.references, ref_k=config.ref_k, ref_radius=config.ref_radius,
                                peers=config.peers, peer_images=config.peer_images,
                                peer_position=config.peer_position, neighbours=config.neighbours)
        keep = config.framing.keep()
        if keep is not None:
            self.head.keep = torch.from_numpy(keep)
        self.types = self.build_types() if config.class_names else None

    def build_types(self) -> TypeHead:
        """The defect-type head for `config.class_names` (see model/types.py)."""
        c = self.config
        channels = self.backbone.info.channels
        return TypeHead(sum(channels), len(c.class_names), c.type_text_dim, channels[-1] if c.type_text_dim else 0)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone feature maps of a [0, 1] image batch, after `hide` and per-image contrast standardisation."""
        x = self.hide(x)
        if self.config.normalize_input:
            x = standardize(x)
        return self.backbone(x)

    def hide(self, x: torch.Tensor) -> torch.Tensor:
        """The batch with its don't-care pixels (`--ignore`) filled from the pixels around them (`fill_around`), so that
        whatever shows there (a date code, a label) never reaches the backbone and the fill leaves no edge of its own."""
        keep = self.head.keep
        if keep is None:
            return x
        if self.config.fill_around:
            return fill_around(x, keep)
        # models fitted before fill_around learnt this fill: the rest of each image's mean colour (means, not sums: no
        # float16 overflow in an engine)
        fill = (x * keep).mean(dim=(2, 3), keepdim=True) / keep.mean()
        return x * keep + fill * (1.0 - keep)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """-> (score, amap), or (score, amap, type_probs [B, K + 1]: known types then `unknown`) with a type head."""
        feats = self.features(x)
        if self.types is None:
            return self.head(feats)
        emb = self.head.embed(feats)  # shared by both heads
        score, amap = self.head(feats, emb)
        tokens = feats[-1] if self.types.has_text else None
        return score, amap, self.types(emb, amap, tokens)


def fill_around(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """`x` [B, C, H, W] with its pixels where `keep` [H, W] is 0 filled smoothly from the kept pixels around them
    (push-pull: the kept pixels are averaged down a pyramid of halvings, then each hole takes the coarser level's
    estimate, upsampled). Kept pixels are returned as they are, so filling twice changes nothing."""
    h, w = keep.shape
    levels = max(1, math.ceil(math.log2(max(h, w))))
    colour, weight = x * keep, keep[None, None]
    pad = (0, 2**levels - w, 0, 2**levels - h)
    if any(pad):  # zeros of weight 0: every pooling window is whole
        colour, weight = F.pad(colour, pad), F.pad(weight, pad)
    pyramid = [(colour, weight)]
    for _ in range(levels):
        colour, weight = F.avg_pool2d(colour, 2), F.avg_pool2d(weight, 2)
        pyramid.append((colour, weight))
    out = colour / weight.clamp_min(1e-6)  # 1 x 1: the mean of what is kept
    for colour, weight in reversed(pyramid[:-1]):
        out = colour + (1.0 - weight) * F.interpolate(out, scale_factor=2.0, mode="bilinear", align_corners=False)
    return out[..., :h, :w]


def standardize(x: torch.Tensor, std: float = 0.2) -> torch.Tensor:
    """Give each image the same mean (0.5) and contrast, so exposure and lighting drift are not anomalies.

    Local contrast (the defects) is kept; only the image-wide gain and offset are removed.
    """
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    centred = x - mean
    var = (centred**2).mean(dim=(1, 2, 3), keepdim=True)
    # a blank frame (one grey level): x - mean is only the mean's rounding, which torch and onnxruntime sum differently,
    # and / sqrt(1e-6) magnified it into scores 2e-4 apart (export --verify failed); no real image's variance is this low
    centred = torch.where(var > 1e-12, centred, torch.zeros_like(centred))
    return centred / (var + 1e-6).sqrt() * std + 0.5


@torch.no_grad()
def fold_batchnorm(net: InspectorNet) -> InspectorNet:
    """`net` (eval mode) for inference only, with each backbone BatchNorm that directly follows a convolution folded
    into that convolution's weights and bias (what onnxruntime does to the exported graph). Torch eager ran those
    BatchNorms as 48 separate passes: folded, the default model took 40.7 against 44.6 ms an image (median of 100
    round-robin calls in one process, 2 threads; scores within 1.1e-5, maps 3.3e-5, on 49 magnetic_tile images).
    Pairs are found by running the backbone once (a BatchNorm whose input is a convolution's output); a copy is folded
    and kept only if its feature maps match the original's within float32 rounding, else `net` is returned as it was.
    Never for training or saving: the checkpoint keeps its BatchNorms."""
    backbone = net.backbone
    if not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules()):
        return net
    folded = _fold_copy(backbone, torch.rand(1, 3, *net.config.input_size, device=next(backbone.parameters()).device))
    if folded is not None:
        net.backbone = folded
    return net


def _fold_copy(backbone: nn.Module, example: torch.Tensor) -> nn.Module | None:
    import copy

    pairs, last = [], {}

    def conv_out(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        last["conv"], last["out"] = m, out

    def bn_in(m: nn.Module, inp: tuple) -> None:
        if last.get("out") is inp[0] and m.affine and m.running_var is not None:
            pairs.append((last["conv"], m))

    copied = copy.deepcopy(backbone)
    hooks = [m.register_forward_hook(conv_out) for m in copied.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_pre_hook(bn_in) for m in copied.modules() if isinstance(m, nn.BatchNorm2d)]
    try:
        want = copied(example)
    finally:
        for h in hooks:
            h.remove()
    parent = {id(child): (p, name) for p in copied.modules() for name, child in p.named_children()}
    for conv, bn in pairs:
        scale = bn.weight / (bn.running_var + bn.eps).sqrt()
        conv.weight.mul_(scale.view(-1, 1, 1, 1))  # in place: keeps the weights' channels_last layout
        shift = bn.bias - bn.running_mean * scale
        conv.bias = nn.Parameter(shift if conv.bias is None else conv.bias * scale + shift, requires_grad=False)
        # timm's BatchNormAct2d applies its dropout and activation after the normalisation: those stay
        after = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None and not isinstance(m, nn.Identity)]
        p, name = parent[id(bn)]
        setattr(p, name, nn.Sequential(*after) if after else nn.Identity())
    got = copied(example)
    same = all(torch.allclose(g, w, rtol=1e-4, atol=1e-4 * float(w.abs().max())) for g, w in zip(got, want, strict=True))
    return copied if pairs and same else None
