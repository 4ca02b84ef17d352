"""PyTorch eager engine, straight from a checkpoint directory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from inspector.engines.base import HeadOutput, ModelMeta, parse_device
from inspector.engines.exported import check_batch
from model.checkpoint import WEIGHTS, load_checkpoint
from model.errors import InspectorError
from model.net import fold_batchnorm


def torch_device(device: str) -> torch.device:
    """`--device` for a checkpoint -> a torch device this machine has, or one line saying why not."""
    name, index = parse_device(device, ("cpu", "cuda"), "a checkpoint", " (tensorrt is for exported ONNX models)")
    if name == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if index >= count:
            raise InspectorError(f"--device {device}: this torch sees {count} CUDA GPU(s); use --device cpu"
                                 + ("" if count else ", or install a CUDA build of torch"))
    return torch.device(device)


def float32_on_cuda() -> None:
    """Full float32 in cuDNN convolutions and CUDA matrix products, not TF32 (torch's default for convolutions).

    With TF32, scores on an H200 were up to 0.53 (mean 0.005) from the same checkpoint's on the CPU, where the
    thresholds were calibrated (434 magnetic_tile images)."""
    # the older flags, not torch 2.9's fp32_precision: torch.export reads these, and fails once the two APIs disagree
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def _one_thread_after_fork() -> None:
    """In a forked child (multiprocessing's default start method on Linux), torch on one thread: GNU OpenMP's thread
    pool, started by an inspection in the parent, does not survive fork(), and the child's first convolution waited on
    its threads forever, whether it used the parent's Inspector or loaded its own. One thread a worker process is what a
    pool of them wants anyway; scores are the same."""
    if torch.get_num_threads() > 1:
        torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_thread_after_fork)  # once, when the torch engine is first imported


class TorchEngine:
    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        self.device = torch_device(device)  # before loading: a wrong device should not wait for the weights
        if self.device.type == "cuda":
            float32_on_cuda()
        self.net, manifest = load_checkpoint(path)
        # inference only: BatchNorms folded into their convolutions (model/net.py), as the exported graphs have them
        self.net = fold_batchnorm(self.net.to(self.device))
        self.meta = ModelMeta.from_manifest(manifest, str(path), f"torch-{self.device.type}", WEIGHTS)
        self.warmup()

    @torch.no_grad()
    def infer(self, batch: np.ndarray) -> HeadOutput:
        # as the exported engines: a batch at another size was scored (the backbone takes any size), a wrong layout or
        # a single image ended in torch's RuntimeError or IndexError
        out = self.net(torch.from_numpy(check_batch(batch, self.meta)).to(self.device))
        arrays = [o.float().cpu().numpy() for o in out]
        return HeadOutput(arrays[0], arrays[1], arrays[2] if len(arrays) > 2 else None)

    def warmup(self) -> None:
        self.infer(np.zeros((1, 3, *self.meta.input_size), dtype=np.float32))

    def close(self) -> None:
        self.net = None
