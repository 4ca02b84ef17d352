"""PyTorch eager engine, straight from a checkpoint directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from inspector.engines.base import HeadOutput, ModelMeta
from model.checkpoint import WEIGHTS, load_checkpoint


class TorchEngine:
    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        self.net, manifest = load_checkpoint(path)
        self.device = torch.device(device)
        self.net.to(self.device)
        self.meta = ModelMeta.from_manifest(manifest, str(path), f"torch-{self.device.type}", WEIGHTS)
        self.warmup()

    @torch.no_grad()
    def infer(self, batch: np.ndarray) -> HeadOutput:
        out = self.net(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device))
        arrays = [o.float().cpu().numpy() for o in out]
        return HeadOutput(arrays[0], arrays[1], arrays[2] if len(arrays) > 2 else None)

    def warmup(self) -> None:
        self.infer(np.zeros((1, 3, *self.meta.input_size), dtype=np.float32))

    def close(self) -> None:
        self.net = None
