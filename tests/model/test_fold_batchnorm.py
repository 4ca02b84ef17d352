"""fold_batchnorm (the torch engine's inference-only net): no BatchNorm left, the same scores and maps."""

import copy

import torch
from torch import nn

from model.net import InspectorNet, NetConfig, fold_batchnorm


def _bn_stats(net: InspectorNet) -> None:
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):  # not the identity a fresh BatchNorm is
            m.running_mean.normal_(0, 0.1, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
            m.weight.data.uniform_(0.5, 1.5, generator=g)
            m.bias.data.normal_(0, 0.1, generator=g)


@torch.no_grad()
def test_folded_net_scores_as_the_original():
    net = InspectorNet(NetConfig(layers=(2, 3), input_size=(64, 64), bank_size=8), load_weights=False).eval()
    _bn_stats(net)
    net.head.set_bank(torch.randn(8, sum(net.backbone.info.channels)))
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    want = net(x)
    folded = fold_batchnorm(copy.deepcopy(net))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    got = folded(x)
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-4)
    # the net it was given keeps its BatchNorms in its state dict (a checkpoint saved from it is unchanged)
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
