"""The CLIP path as a user with weights on disk meets it, on tiny randomly initialised open_clip configs (no hub):
patch sizes that do not divide the input, open_clip's cache, Hugging Face tokenizers, and checkpoints."""

from __future__ import annotations

import pytest
import torch

from model.errors import InspectorError

PATCH14 = {  # ViT-*-14's patch at a tenth of the width: 64 px is 4 whole patches and 8 px more
    "embed_dim": 32,
    "vision_cfg": {"image_size": 56, "layers": 2, "width": 64, "patch_size": 14, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
PATCH16 = {**PATCH14, "vision_cfg": {**PATCH14["vision_cfg"], "image_size": 64, "patch_size": 16}}


@pytest.fixture
def configs(monkeypatch):
    pytest.importorskip("open_clip")
    from open_clip import factory, pretrained

    monkeypatch.setitem(factory._MODEL_CONFIGS, "audit-p14", PATCH14)
    monkeypatch.setitem(factory._MODEL_CONFIGS, "audit-p16", PATCH16)
    monkeypatch.setitem(factory._MODEL_CONFIGS, "audit-hf-tok", {**PATCH16, "text_cfg": {**PATCH16["text_cfg"], "hf_tokenizer_name": "no-org/no-such-tokenizer"}})
    monkeypatch.setitem(pretrained._PRETRAINED, "audit-p16", {"cached": pretrained._pcfg(hf_hub="audit-org/audit-p16-weights/", quick_gelu=True,
                                                                                           mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
                                                              "absent": pretrained._pcfg(hf_hub="audit-org/not-downloaded/")})
    torch.manual_seed(0)


def net(spec: str, size: int = 64, **kw):
    from model.net import InspectorNet, NetConfig

    return InspectorNet(NetConfig(backbone=spec, layers=(0, 1), input_size=(size, size), grid_stride=16, bank_size=4, **kw),
                        load_weights=False).eval()


def test_the_last_pixels_of_an_input_that_is_no_whole_number_of_patches_are_seen(configs):
    """ViT-L-14 at the default 256 px made 18 patches of 14 px: the last 4 px columns and rows were never looked at (a chip
    at the part's edge passed), and the token grid was stretched over the whole map. 64 px here: the last 8 px."""
    model = net("clip:audit-p14:random")
    assert model.config.whole_patches is True and model.config.to_dict()["whole_patches"] is True
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    edge = x.clone()
    edge[..., :, 58:] = 0.0  # a dark band in the last 6 columns
    with torch.no_grad():
        a, b = model.backbone(x)[-1], model.backbone(edge)[-1]
    assert tuple(a.shape[-2:]) == (5, 5)  # 5 patches cover 64 px, resized to 70
    assert (a - b)[..., -1].abs().max() > 1e-3  # the last column of tokens sees the band


def test_models_whose_patches_divide_the_input_are_unchanged_and_older_checkpoints_keep_their_crop(configs, tmp_path):
    from model.checkpoint import load_checkpoint, save_checkpoint
    from model.net import NetConfig

    even = net("clip:audit-p16:random")
    assert even.config.whole_patches is False and "whole_patches" not in even.config.to_dict()  # older versions still read it
    assert NetConfig.from_dict({**even.config.to_dict()}).whole_patches is False
    model = net("clip:audit-p14:random")
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    save_checkpoint(model, tmp_path / "new", {})
    loaded, _ = load_checkpoint(tmp_path / "new")
    assert loaded.config.whole_patches and loaded.backbone.whole_patches
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], model(x)[0])
    old = net("clip:audit-p14:random", whole_patches=False)  # as fitted before: the rest of the image cropped away
    assert old.backbone(x)[-1].shape[-1] == 4 and "whole_patches" not in old.config.to_dict()


def test_an_open_clip_tag_loads_from_its_cache_without_a_network(configs, tmp_path, monkeypatch):
    """`clip:<model>:<tag>` (the open_clip cache, as the architecture notes promise) was 'no such file'."""
    from huggingface_hub import constants
    from safetensors.torch import save_file

    from model.backbones import build_backbone

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(InspectorError, match=r"CLIP weights absent for audit-p16: not in open_clip's cache \(.*models--audit-org--not-downloaded\)"
                                              r".*pretrained='absent'.*or give the weights file's path"):
        build_backbone("clip:audit-p16:absent", (0, 1))
    with pytest.raises(InspectorError, match="no such file; .* or one of open_clip's tags for audit-p16 whose weights are in its cache"):
        build_backbone("clip:audit-p16:typo", (0, 1))
    source = build_backbone("clip:audit-p16:random", (0, 1)).clip.state_dict()
    snapshot = tmp_path / "hub" / "models--audit-org--audit-p16-weights" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    save_file({k: v.contiguous() for k, v in source.items()}, str(snapshot / "open_clip_model.safetensors"))
    bb = build_backbone("clip:audit-p16:cached", (0, 1))
    assert torch.equal(bb.clip.visual.conv1.weight, source["visual.conv1.weight"])
    assert bb.mean.flatten().tolist() == [0.5] * 3 and bb.std.flatten().tolist() == [0.25] * 3  # the tag's own statistics
    act = bb.clip.visual.transformer.resblocks[0].mlp.gelu
    assert type(act).__name__ == "QuickGELU"  # trained with it; rebuilt so from a checkpoint too, without the weights
    rebuilt = build_backbone("clip:audit-p16:cached", (0, 1), load_weights=False)
    assert type(rebuilt.clip.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"


def test_a_hugging_face_tokenizer_that_cannot_be_had_is_one_line(configs):
    """CLIPA's and the multilingual models' tokenizers come from the Hugging Face hub: naming defects by prompt was a
    ModuleNotFoundError (no transformers) or an OSError (offline) traceback."""
    from model.backbones import build_backbone
    from model.prompts import text_weights

    bb = build_backbone("clip:audit-hf-tok:random", (0, 1))
    with pytest.raises(InspectorError, match="CLIP model audit-hf-tok: its tokenizer .*no-org/no-such-tokenizer.*(pip install|cache)"):
        text_weights(bb, ["crack", "stain"])


def test_weights_of_another_model_are_said_not_to_fit_it(configs, tmp_path, monkeypatch):
    """Another CLIP's weights (another text width) were 'cannot be read as a weights file ... complete' from open_clip's
    AssertionError: the user was sent to re-download a file that is whole."""
    from open_clip import factory
    from safetensors.torch import save_file

    from model.backbones import build_backbone

    monkeypatch.setitem(factory._MODEL_CONFIGS, "audit-wide-text", {**PATCH16, "text_cfg": {**PATCH16["text_cfg"], "width": 48}})
    other = build_backbone("clip:audit-wide-text:random", (0,)).clip.state_dict()
    save_file({k: v.contiguous() for k, v in other.items()}, str(tmp_path / "wide.safetensors"))
    with pytest.raises(InspectorError, match=r"CLIP weights .*wide\.safetensors do not fit audit-p16: text pos_embed width changed"):
        build_backbone(f"clip:audit-p16:{tmp_path / 'wide.safetensors'}", (0,))


def test_a_partly_downloaded_pt_file_is_said_to_be_incomplete(configs, tmp_path):
    """A .pt cut short (an interrupted download) was 'do not fit <model>: PytorchStreamReader failed ...': the user was
    sent looking for another model's weights."""
    from model.backbones import build_backbone

    torch.save(build_backbone("clip:audit-p16:random", (0,)).clip.state_dict(), tmp_path / "whole.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:100_000])
    with pytest.raises(InspectorError, match=r"CLIP weights .*cut\.pt: cannot be read as a weights file .*complete"):
        build_backbone(f"clip:audit-p16:{tmp_path / 'cut.pt'}", (0,))
    assert build_backbone(f"clip:audit-p16:{tmp_path / 'whole.pt'}", (0,)).layers == (0,)


def test_a_checkpoint_whose_clip_model_this_open_clip_does_not_know_names_itself(configs, tmp_path, monkeypatch):
    """Loaded where open_clip does not know its model (another open_clip version), a checkpoint said only 'unknown
    open_clip model': not which model file, nor why."""
    from open_clip import factory

    from model.checkpoint import load_checkpoint, save_checkpoint

    save_checkpoint(net("clip:audit-p16:random"), tmp_path / "ck", {})
    monkeypatch.delitem(factory._MODEL_CONFIGS, "audit-p16")
    with pytest.raises(InspectorError, match=rf"checkpoint {tmp_path / 'ck'}: unknown open_clip model 'audit-p16'.*fitted with another open_clip"):
        load_checkpoint(tmp_path / "ck")
