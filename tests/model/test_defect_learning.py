"""Learning from generated defects: the learnt branch, the flow generator, the fused graph and the ablation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.checkpoint import load_checkpoint, save_checkpoint
from model.data import load_dataset
from model.defect_learning import ALPHAS, BLEND, DefectLearning, _train_classifier, _train_context
from model.errors import InspectorError
from model.evaluate import metrics_report, score_samples
from model.fit import FitOptions, fit
from model.flow import FeatureFlow
from model.head import ContextSegmenter
from model.metrics import roc_auc
from model.synth import DEFECT_TYPES

SMALL = dict(input_size=64, coreset_ratio=0.25, batch_size=8)


def test_flow_learns_a_two_type_distribution():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(2000, 8, generator=gen) * 0.3 + torch.tensor([3.0] * 4 + [0.0] * 4)
    b = torch.randn(2000, 8, generator=gen) * 0.3 - torch.tensor([3.0] * 4 + [0.0] * 4)
    flow = FeatureFlow(8, 2, hidden=64, seed=0)
    losses = flow.train(torch.cat([a, b]), torch.cat([torch.zeros(2000), torch.ones(2000)]).long(), steps=600, batch=128)
    assert np.mean(losses[-50:]) < np.mean(losses[:50])
    sa, sb = flow.sample(500, torch.zeros(500, dtype=torch.long)), flow.sample(500, torch.ones(500, dtype=torch.long))
    # each type's samples land on its own mode, not the other's
    assert (sa[:, :4].mean(1) > 1.5).float().mean() > 0.9
    assert (sb[:, :4].mean(1) < -1.5).float().mean() > 0.9


@pytest.fixture(scope="module", params=["patch", "context"])
def learnt(request, tiny_data, tmp_path_factory):
    extra = {"feature_synth": True, "flow_steps": 100} if request.param == "patch" else {}
    options = FitOptions(**SMALL, defects=DefectLearning(synth=24, steps=150, head=request.param, **extra))
    net, report = fit(load_dataset(tiny_data), options)
    out = tmp_path_factory.mktemp("learnt") / "ckpt"
    save_checkpoint(net, out, {"options": report.options, "training": report.training, "calibration": report.calibration,
                               "thresholds": report.thresholds, "calibration_scores": report.scores})
    return net, report, out, request.param


def test_learnt_branch_is_in_the_model_and_survives_a_checkpoint(learnt, tiny_data):
    net, report, out, head = learnt
    info = report.training["generated_defects"]
    assert net.config.seg_context == (head == "context")  # the head asked for, not the other silently
    if head == "context":  # by default it learns region defects only; local ones are the memory bank's
        assert isinstance(net.head.seg, ContextSegmenter) and info["head"] == "context" and info["defect_cells"] > 0
        assert info["train_types"] == ["transplant"]
    else:
        assert info["head"] == "patch" and info["positives"] > 0 and info["flow"]["generated"] > 0
        assert info["train_types"] == list(DEFECT_TYPES)
    assert net.config.position_norm  # the learnt branch shapes the map; the score stays position-normalised
    assert net.config.position_map  # blended into the positional map, which the score's maximum comes from
    assert 0.0 <= info["alpha"] <= 1.0
    loaded, _ = load_checkpoint(out)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = net(x), loaded(x)
    assert torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])
    ds = load_dataset(tiny_data)
    scored = score_samples(loaded, ds.test, with_masks=True)
    assert metrics_report(ds.test, scored)["image_auroc"] > 0.9


def test_blend_weight_changes_the_map(learnt):
    net, _, _, _ = learnt
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        base = net(x)[1].clone()
        saved = net.head.seg_norm.clone()
        net.head.seg_norm[2] = 1.0 - float(saved[2]) if float(saved[2]) != 0.5 else 0.9
        changed = net(x)[1]
        net.head.seg_norm = saved
    assert not torch.allclose(base, changed)


def test_learnt_map_adds_only_its_excess_over_good_pixels(learnt):
    net, _, out, _ = learnt
    head = net.head
    assert head.seg_gate and load_checkpoint(out)[0].head.seg_gate
    gate = float(head.seg_norm[0])
    amap = torch.randn(1, 8, 8)
    under = gate - 0.1 - torch.rand(1, 8, 8)
    far_under = torch.full_like(under, gate - 50.0)
    assert torch.equal(head.blend(amap, under), head.blend(amap, far_under))  # under the gate: nothing added
    over = head.blend(amap, torch.full_like(under, gate + 1.0))
    assert (over > head.blend(amap, under)).all()
    head.seg_gate = False  # checkpoints from before the gate blend the whole learnt map
    try:
        assert not torch.equal(head.blend(amap, under), head.blend(amap, far_under))
    finally:
        head.seg_gate = True


def test_learnt_branch_shapes_the_map_not_the_score(learnt):
    net, _, _, _ = learnt
    x = torch.rand(2, 3, 64, 64)
    seg = net.head.seg
    with torch.no_grad():
        score, amap = net(x)
        net.head.seg = None
        try:
            plain_score, plain_map = net(x)
        finally:
            net.head.seg = seg
    assert torch.equal(score, plain_score) and not torch.allclose(amap, plain_map)


def test_fused_model_exports_as_one_graph(learnt):
    ort = pytest.importorskip("onnxruntime")
    from exporters.onnx_export import export_onnx

    net, _, _, _ = learnt
    model = export_onnx(net.eval())
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    score, amap = sess.run(None, {sess.get_inputs()[0].name: x})[:2]
    with torch.no_grad():
        ts, tm = net(torch.from_numpy(x))
    np.testing.assert_allclose(score, ts.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(amap, tm.numpy(), rtol=1e-4, atol=1e-3)


def test_patch_rows_keep_every_defect_patch_and_cap_the_normal_ones(learnt, monkeypatch):
    from model import defect_learning

    net, _, _, _ = learnt
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (20, 64, 64, 3), dtype=np.uint8)
    masks = np.zeros((20, 64, 64), bool)
    masks[:, :32, :32] = True  # a quarter of every image
    grid = tuple(net.head.embed(net.features(torch.zeros(1, 3, 64, 64))).shape[-2:])
    cells = grid[0] * grid[1]
    pos, neg, kinds = defect_learning._patch_rows(net, imgs, masks, np.arange(20) % 3, grid, seed=0)
    cover = defect_learning._cover(masks, grid).reshape(-1)
    assert len(pos) == len(kinds) == int((cover >= defect_learning.POSITIVE_COVER).sum())
    assert len(neg) == int((cover == 0).sum())  # under the cap: every normal patch
    monkeypatch.setattr(defect_learning, "MAX_NORMAL_ROWS", 20 * cells // 10)
    pos_capped, neg_capped, _ = defect_learning._patch_rows(net, imgs, masks, np.arange(20) % 3, grid, seed=0)
    assert torch.equal(pos_capped, pos) and 0 < len(neg_capped) < len(neg) / 4


def _surfaces(n: int, band: bool, gen: torch.Generator, d: int = 8, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Cells [n, d, size, size] of one random surface per image; with `band`, a band along the top or bottom
    (1-3 rows) of a second surface drawn from the same distribution, and that band as the target [n, size, size]."""
    cells = torch.randn(n, d, 1, 1, generator=gen).repeat(1, 1, size, size)
    target = torch.zeros(n, size, size)
    if band:
        other = torch.randn(n, d, generator=gen)
        depth = torch.randint(1, 4, (n,), generator=gen)
        for i in range(n):
            rows = slice(0, int(depth[i])) if i % 2 else slice(size - int(depth[i]), size)
            cells[i, :, rows] = other[i, :, None, None]
            target[i, rows] = 1.0
    return cells + 0.1 * torch.randn(cells.shape, generator=gen), target


def test_whole_image_branch_finds_the_inside_of_a_band_that_no_patch_classifier_can():
    gen = torch.Generator().manual_seed(0)
    good, zero = _surfaces(200, False, gen)
    bands, target = _surfaces(200, True, gen)
    seg = ContextSegmenter(8, 16)
    _train_context(seg, torch.cat([good, bands]).half(), torch.cat([zero, target]), steps=400, seed=0)
    test, test_target = _surfaces(40, True, gen)
    with torch.no_grad():
        logits = seg(test, prepared=True)[:, 0]
    within = [roc_auc(t.flatten().numpy(), m.flatten().numpy()) for t, m in zip(test_target, logits)]
    assert np.mean(within) > 0.9
    # every cell on its own is an ordinary surface: a per-patch classifier on the same data is near chance
    rows = lambda c: c.permute(0, 2, 3, 1).reshape(-1, 8)  # noqa: E731
    clf = _train_classifier(rows(bands)[target.flatten() > 0], rows(torch.cat([good, bands]))[torch.cat([zero, target]).flatten() == 0],
                            hidden=32, steps=400, seed=0)
    with torch.no_grad():
        patch = clf(test)[:, 0]
    assert np.mean([roc_auc(t.flatten().numpy(), m.flatten().numpy()) for t, m in zip(test_target, patch)]) < 0.7


def test_bad_options():
    with pytest.raises(InspectorError, match="--feature-synth"):
        DefectLearning(feature_synth=True).validate()
    with pytest.raises(InspectorError, match="--synth-head patch"):
        DefectLearning(synth=5, feature_synth=True).validate()
    with pytest.raises(InspectorError, match="--synth-head patch"):
        DefectLearning(noise=True).validate()
    with pytest.raises(InspectorError, match="--synth-head pixel"):
        DefectLearning(synth=5, head="pixel").validate()
    with pytest.raises(InspectorError, match="--synth -1"):
        DefectLearning(synth=-1).validate()
    with pytest.raises(InspectorError, match="unknown"):
        DefectLearning(synth=5, types=("dent",)).validate()
    with pytest.raises(InspectorError, match="--blend 1.5"):
        DefectLearning(synth=5, blend=1.5).validate()


def test_ablation_table(tiny_data, monkeypatch):
    from model import ablation

    small = {k: DefectLearning(**{**v.__dict__, "steps": 100, "flow_steps": 60}) for k, v in ablation.variants(16).items()}
    monkeypatch.setattr(ablation, "variants", lambda synth: small)
    rows = ablation.run_ablation(load_dataset(tiny_data), FitOptions(**SMALL), synth=16)
    assert [r["variant"] for r in rows] == list(small)
    for r in rows:
        assert all(0.0 <= r[m] <= 1.0 for m in ("image_auroc", "pixel_auroc", "pixel_ap", "aupro"))
        assert r["image_auroc"] > 0.9 and r["pixel_auroc"] > 0.8  # these synthetic defects are easy: 1.0 and 0.94-1.0
    assert all(r["pixel_auroc"] != rows[0]["pixel_auroc"] for r in rows[1:])  # each variant's branch made its own map
    assert rows[0]["alpha"] is None and rows[1]["alpha"] is not None


def test_cli_fit_with_synth_records_the_learnt_branch(tiny_data, tmp_path):
    import json

    from inspector.cli import main

    out = tmp_path / "ckpt"
    assert main(["fit", str(tiny_data), "--out", str(out), "--size", "64", "--coreset", "0.25", "--synth", "12",
                 "--synth-types", "pit,scratch,stain", "--synth-steps", "150"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    learnt = manifest["training"]["generated_defects"]
    assert manifest["options"]["defects"]["steps"] == 150
    # a fixed weight needs no validation defects, so every type is trained on
    assert learnt["synth_images"] == 12 and learnt["train_types"] == ["pit", "scratch", "stain"] and "val_types" not in learnt
    assert learnt["head"] == "context" and manifest["net"]["seg_hidden"] > 0 and manifest["net"]["seg_context"]
    assert main(["fit", str(tiny_data), "--out", str(tmp_path / "x"), "--feature-synth"]) == 2  # needs --synth
    # the default blend weight is fixed
    assert learnt["alpha"] == BLEND and learnt["alpha_from"] == "fixed"
    assert float(load_checkpoint(out)[0].head.seg_norm[2]) == pytest.approx(BLEND)
    # 'auto' chooses the weight on generated validation defects; --synth-head patch is the per-patch classifier
    auto = tmp_path / "auto"
    assert main(["fit", str(tiny_data), "--out", str(auto), "--size", "64", "--coreset", "0.25", "--synth", "12",
                 "--synth-types", "transplant", "--blend", "auto", "--synth-head", "patch", "--synth-steps", "150"]) == 0
    manifest = json.loads((auto / "manifest.json").read_text())
    chosen = manifest["training"]["generated_defects"]
    assert chosen["alpha_from"] == "validation" and chosen["alpha"] in ALPHAS and chosen["val_types"] == ["transplant"]
    assert chosen["head"] == "patch" and not manifest["net"]["seg_context"]
    for bad in (["--synth", "12", "--blend", "-1"], ["--synth", "12", "--blend", "half"], ["--synth", "0", "--blend", "0.3"],
                ["--synth", "12", "--feature-synth"], ["--synth", "12", "--synth-head", "pixel"], ["--synth", "0", "--synth-head", "patch"],
                ["--synth-types", "crack", "--references", "4"], ["--synth", "12", "--synth-steps", "0"], ["--synth", "0", "--synth-steps", "100"]):
        assert main(["fit", str(tiny_data), "--out", str(tmp_path / "y"), *bad]) == 2


def test_cli_fit_learns_from_generated_defects_unless_told_not_to(tiny_data, tmp_path, monkeypatch):
    import json

    from inspector.cli import main
    from model import defect_learning

    monkeypatch.setattr(defect_learning, "DEFAULT_SYNTH", 12)  # the real default, 1000, takes half a minute here

    def learnt(*flags: str) -> dict | None:
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        assert main(["fit", str(tiny_data), "--out", str(out), "--size", "64", "--coreset", "0.25", *flags]) == 0
        return json.loads((out / "manifest.json").read_text())["training"].get("generated_defects")

    default = learnt("--synth-steps", "100")
    assert default["synth_images"] == 12 and default["head"] == "context" and default["alpha"] == BLEND
    assert learnt("--synth", "0") is None
    assert learnt("--references", "4", "--ref-k", "2") is None  # references learn from no generated defects


def test_ablation_refuses_bad_fit_options_before_any_work(tiny_data):
    from model.ablation import run_ablation

    with pytest.raises(InspectorError, match="--size 50"):
        run_ablation(load_dataset(tiny_data), FitOptions(input_size=50), synth=16)


def test_training_the_whole_image_branch_moves_its_progress_bar_step_by_step(tiny_data):
    bars: dict[str, list] = {}

    class Recorder:
        def __init__(self, desc: str, total: int) -> None:
            self.steps = bars.setdefault(desc, [total])

        def update(self, n: int = 1) -> None:
            self.steps.append(n)

        def close(self) -> None:
            pass

    fit(load_dataset(tiny_data), FitOptions(**SMALL, defects=DefectLearning(synth=8, steps=20)), progress=Recorder)
    total, *updates = bars["learning from generated defects (steps)"]  # "generated defects: 949/1502" read as a count of defects
    assert total == 21 and sum(updates) == total and len(updates) == 21  # 20 steps, standardisation
    # generation has a bar of its own, image by image: a log heard nothing while the default's 1,250 were made
    total, *updates = bars["generating defects (images)"]
    assert total == 8 and updates == [1] * 8  # the 8 asked for (the default blend is fixed: no validation set)


def test_generated_defects_too_thin_for_the_whole_image_branch_are_refused(tiny_data, monkeypatch):
    """`--synth-types crack` marked no cell: the branch learnt "no defect anywhere", and was blended in at 0.9."""
    import model.defect_learning as dl

    real = dl._context_cells
    monkeypatch.setattr(dl, "_context_cells", lambda *a: (real(*a)[0], torch.zeros_like(real(*a)[1])))
    with pytest.raises(InspectorError, match=r"none of the 4 generated defects covers 30% of a cell .*--synth-head patch"):
        fit(load_dataset(tiny_data), FitOptions(**SMALL, defects=DefectLearning(synth=4, steps=5)))
