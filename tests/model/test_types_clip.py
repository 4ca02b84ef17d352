"""The CLIP path of the type head on a tiny, randomly initialised open_clip config (no hub, no weights):
prompt ensembles give zero-shot names; labelled examples refine them; the graph needs no text tower."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model.errors import InspectorError
from tests.cli import assert_one_line_error, cli
from tests.model.types_data import TYPES, write_labels

NAME = "inspector-tiny-test"
SIZE = 64


@pytest.fixture(scope="module")
def clip_net():
    pytest.importorskip("open_clip")
    from open_clip import factory

    factory._MODEL_CONFIGS[NAME] = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": SIZE, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    from model.net import InspectorNet, NetConfig

    torch.manual_seed(0)
    yield InspectorNet(NetConfig(backbone=f"clip:{NAME}:", layers=(0, 1), input_size=(SIZE, SIZE), grid_stride=16), load_weights=False).eval()
    factory._MODEL_CONFIGS.pop(NAME, None)


def test_prompt_ensembles():
    from model.prompts import TEMPLATES, prompts_for, words

    assert words("rolled-in_scale") == "rolled-in scale"
    ps = prompts_for("pitted_surface", part="steel strip")
    assert len(ps) == len(TEMPLATES) and all("pitted surface" in p for p in ps) and any("steel strip" in p for p in ps)


def test_text_weights_need_a_text_tower():
    from model.net import InspectorNet, NetConfig
    from model.prompts import text_weights

    net = InspectorNet(NetConfig(input_size=(SIZE, SIZE)), load_weights=False)
    with pytest.raises(InspectorError, match="needs the clip backbone"):
        text_weights(net.backbone, ["crack"])


def test_zero_shot_names_match_clip_similarities(clip_net):
    """type_probs = softmax(logit scale * cos(projected image tokens, prompt-ensemble embedding))."""
    from model.fit_types import fit_zero_shot
    from model.prompts import prompts_for, text_weights

    types = ["crack", "scratch", "stain"]
    tw = text_weights(clip_net.backbone, types, part="tile")
    ref = clip_net.backbone.encode_text(prompts_for("scratch", "tile")).mean(0)
    assert torch.allclose(tw[1], ref / ref.norm(), atol=1e-6)
    report = fit_zero_shot(clip_net, types, tw)
    assert report.region == "image" and report.unknown_threshold is None
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        probs = clip_net(x)[2]
        visual = clip_net.backbone.clip.visual
        tokens = clip_net.features(x)[-1].flatten(2).transpose(1, 2)  # [B, N, C]: last tapped block
        img = visual.ln_post(tokens).mean(dim=1) @ visual.proj
        sims = F.normalize(img, dim=1) @ tw.t()
        expected = torch.softmax(clip_net.backbone.clip.logit_scale.exp().clamp(max=100) * sims, dim=1)
    assert probs.shape == (2, 4) and float(probs[:, -1].max()) == 0.0  # no examples: never `unknown`
    assert torch.allclose(probs[:, :-1], expected, atol=1e-5)


def test_labelled_examples_refine_prompt_weights(clip_net, tmp_path):
    from model.checkpoint import load_checkpoint, save_checkpoint
    from model.fit_types import fit_types
    from model.labels import load_labels
    from model.prompts import text_weights

    labels = load_labels(write_labels(tmp_path / "l", 4))
    report = fit_types(clip_net, labels, text_weights=text_weights(clip_net.backbone, labels.types))
    assert report.text_mix in (1.0, 0.5, 0.25, 0.0) and report.classes == sorted(TYPES)
    assert clip_net.types.has_text and float(clip_net.types.weight.abs().sum()) > 0  # the examples were used
    save_checkpoint(clip_net, tmp_path / "c", {"thresholds": {"image": 0.0, "pixel": 0.0}})
    again, manifest = load_checkpoint(tmp_path / "c")
    assert manifest["net"]["type_text_dim"] == 32
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(clip_net(x)[2], again(x)[2])


def test_cli_fits_zero_shot_types_and_inspects_with_them(clip_net, tiny_data, tmp_path, capsys):
    import json

    out = tmp_path / "zs.ckpt"
    rc, stdout, _ = cli(capsys, "fit", tiny_data, "--out", out, "--backbone", f"clip:{NAME}:random", "--size", SIZE,
                        "--types", "crack,stain", "--part", "tile", "--synth", "0", "--json")
    fitted = json.loads(stdout)
    assert rc == 0 and fitted["types"]["classes"] == ["crack", "stain"] and fitted["types"]["part"] == "tile"
    rc, stdout, _ = cli(capsys, "inspect", out, tiny_data / "test" / "blob" / "000.png", "--json")
    rec = json.loads(stdout)
    assert rc == 0 and rec["model"]["backbone"] == f"clip:{NAME}:random"
    probs = rec["type_probs"]
    assert list(probs) == ["crack", "stain", "unknown"] and probs["unknown"] == 0.0  # zero-shot: never `unknown`
    assert abs(sum(probs.values()) - 1.0) < 1e-3


@pytest.mark.parametrize("spec, needle", [(f"clip:{NAME}:", "needs its weights"), (f"clip:{NAME}:/nonexistent.safetensors", "no such file")])
def test_cli_refuses_clip_without_weights(clip_net, tiny_data, tmp_path, capsys, spec, needle):
    rc, _, err = cli(capsys, "fit", tiny_data, "--out", tmp_path / "x.ckpt", "--backbone", spec, "--size", SIZE, "--types", "crack,stain")
    assert_one_line_error(rc, err, needle)
