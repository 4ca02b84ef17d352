"""A CLIP backbone whose weights are loaded right after it is built (a checkpoint, a weights file) skips open_clip's
random initialisation, which was most of every load's time (ViT-B-16: over a second); random-weight builds keep it."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from model.backbones import build_backbone
from model.errors import InspectorError

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
RANDOM = "clip:inspector-test-tiny57:random"


@pytest.fixture
def inits(monkeypatch):
    """Counts calls into torch.nn.init and MultiheadAttention's reset (which calls its own imported copies)."""
    pytest.importorskip("open_clip")
    factory = importlib.import_module("open_clip.factory")
    monkeypatch.setitem(factory._MODEL_CONFIGS, "inspector-test-tiny57", TINY)
    calls = []
    for name in [n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_")]:
        original = getattr(nn.init, name)
        monkeypatch.setattr(nn.init, name, lambda *a, _f=original, _n=name, **k: (calls.append(_n), _f(*a, **k))[1])
    reset = nn.MultiheadAttention._reset_parameters
    monkeypatch.setattr(nn.MultiheadAttention, "_reset_parameters", lambda self: (calls.append("mha"), reset(self))[1])
    torch.manual_seed(0)
    return calls


def features(bb: nn.Module) -> tuple[list[torch.Tensor], torch.Tensor]:
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return bb.eval()(x), bb.encode_text(["a scratch", "a flawless part"])


def test_a_checkpoint_build_skips_the_initialisation_and_gives_the_same_features(inits):
    ref = build_backbone(RANDOM, (0, 1))
    assert inits and "mha" in inits  # the counting sees open_clip's initialisation
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    inits.clear()
    fast = build_backbone(RANDOM, (0, 1), load_weights=False, init_weights=False)
    assert inits == []  # nothing initialised that the checkpoint overwrites
    fast.load_state_dict(state)  # strict, as load_checkpoint's
    (ref_maps, ref_text), (maps, text) = features(ref), features(fast)
    for ours, theirs in zip(maps, ref_maps, strict=True):
        assert torch.equal(ours, theirs)
    assert torch.equal(text, ref_text)  # the text tower's causal mask (a buffer not in the state dict) is still computed
    assert torch.equal(fast.clip.attn_mask, ref.clip.attn_mask)
    for name, tensor in fast.named_buffers():
        assert torch.equal(tensor, dict(ref.named_buffers())[name]), name


def test_a_missing_key_still_fails_loudly(inits, tmp_path):
    from safetensors.torch import save_file

    state = build_backbone(RANDOM, (0, 1)).clip.state_dict()
    fast = build_backbone(RANDOM, (0, 1), load_weights=False, init_weights=False)
    partial = {k: v for k, v in fast.state_dict().items() if k != "clip.visual.ln_pre.weight"}
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*clip\.visual\.ln_pre\.weight"):
        fast.load_state_dict(partial)
    del state["visual.ln_pre.weight"]  # a weights file: loaded strictly inside open_clip, uninitialised too until then
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(InspectorError, match=r"do not fit inspector-test-tiny57: Missing key.*visual\.ln_pre\.weight"):
        build_backbone(f"clip:inspector-test-tiny57:{tmp_path / 'partial.safetensors'}", (0,))
    assert nn.init.normal_.__name__ == "<lambda>"  # still the counting one: the failed build put torch's functions back


def test_a_weights_file_is_loaded_without_initialising_first(inits, tmp_path):
    from safetensors.torch import save_file

    ref = build_backbone(RANDOM, (0, 1))
    save_file({k: v.contiguous() for k, v in ref.clip.state_dict().items()}, str(tmp_path / "w.safetensors"))
    inits.clear()
    loaded = build_backbone(f"clip:inspector-test-tiny57:{tmp_path / 'w.safetensors'}", (0, 1))
    assert inits == []
    (ref_maps, ref_text), (maps, text) = features(ref), features(loaded)
    assert all(torch.equal(a, b) for a, b in zip(maps, ref_maps, strict=True)) and torch.equal(text, ref_text)


def test_random_weights_are_still_initialised_and_seeded(inits):
    torch.manual_seed(0)
    first = build_backbone(RANDOM, (0, 1)).state_dict()
    assert "mha" in inits and "normal_" in inits
    build_backbone(RANDOM, (0, 1), load_weights=False, init_weights=False)  # leaves torch.nn.init as it was
    inits.clear()
    torch.manual_seed(0)
    again = build_backbone(RANDOM, (0, 1)).state_dict()
    assert "mha" in inits and "normal_" in inits
    assert all(torch.equal(first[k], again[k]) for k in first)  # the same seed, the same network
    torch.manual_seed(1)
    other = build_backbone(RANDOM, (0, 1)).state_dict()
    assert not torch.equal(first["clip.visual.transformer.resblocks.0.attn.in_proj_weight"],
                           other["clip.visual.transformer.resblocks.0.attn.in_proj_weight"])
    assert not torch.equal(first["clip.token_embedding.weight"], other["clip.token_embedding.weight"])
    # the default (load_weights=False alone) is still a random network: tests and `InspectorNet(..., load_weights=False)` use it
    inits.clear()
    torch.manual_seed(0)
    plain = build_backbone(RANDOM, (0, 1), load_weights=False).state_dict()
    assert inits and all(torch.equal(first[k], plain[k]) for k in first)


def test_a_clip_checkpoint_loads_without_initialising_its_backbone(inits, tmp_path):
    """load_checkpoint built the CLIP backbone with random weights, then loaded the checkpoint's over them."""
    from model.checkpoint import load_checkpoint, save_checkpoint
    from model.net import InspectorNet, NetConfig

    net = InspectorNet(NetConfig(backbone=RANDOM, layers=(0, 1), input_size=(64, 64), bank_size=10)).eval()
    save_checkpoint(net, tmp_path / "ck", {})
    inits.clear()
    loaded, _ = load_checkpoint(tmp_path / "ck")
    assert "mha" not in inits and len(inits) < 5, inits  # the head's few layers only; open_clip's blocks made dozens
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(net(x), loaded.eval()(x)) if isinstance(a, torch.Tensor))


def test_another_threads_modules_are_initialised_while_a_backbone_skips(inits):
    """The skip replaced torch's init functions for the whole process: a module another thread built meanwhile (a fit's
    head beside a station's reload) kept uninitialised memory."""
    import threading

    import model.backbones as backbones

    inside, done, other = threading.Event(), threading.Event(), {}

    def build_elsewhere():
        inside.wait(30)
        torch.manual_seed(5)
        other["weight"] = nn.Linear(64, 64).weight.detach().clone()
        done.set()

    thread = threading.Thread(target=build_elsewhere)
    thread.start()
    with backbones._skipped_init():
        inside.set()
        assert done.wait(30)
    thread.join(30)
    torch.manual_seed(5)
    assert torch.equal(other["weight"], nn.Linear(64, 64).weight.detach())
