"""Checkpoint directory: round trip, manifest contents, no pickle, and refusal of tampered or mismatched copies."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import struct

import numpy as np
import pytest
import torch

from model.checkpoint import MANIFEST, WEIGHTS, load_checkpoint, package_version, read_manifest, save_checkpoint, write_manifest
from model.data import load_dataset
from model.errors import InspectorError
from model.evaluate import score_samples
from model.hashing import sha256_file


@pytest.fixture
def ckpt_copy(tiny_ckpt, tmp_path):
    return shutil.copytree(tiny_ckpt, tmp_path / "copy.ckpt")


def test_loaded_model_reproduces_the_scores_it_had_when_fitted(tiny_ckpt, tiny_data):
    """fit() scored the test images with the in-memory model before saving; the loaded one must agree."""
    net, manifest = load_checkpoint(tiny_ckpt)
    test = load_dataset(tiny_data).test
    scores = score_samples(net, test).scores
    labels = np.array([s.is_defect for s in test])
    stored = manifest["calibration_scores"]
    np.testing.assert_allclose(scores[labels], stored["defect"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scores[~labels], stored["good"][-int((~labels).sum()):], rtol=1e-5, atol=1e-5)


def test_save_load_round_trip_is_exact(tiny_ckpt, tmp_path):
    net, manifest = load_checkpoint(tiny_ckpt)
    extra = {k: manifest[k] for k in ("thresholds", "calibration", "options")}
    save_checkpoint(net, tmp_path / "again", extra)
    net2, manifest2 = load_checkpoint(tmp_path / "again")
    a, b = net.state_dict(), net2.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        (s1, m1), (s2, m2) = net(x)[:2], net2(x)[:2]
    assert torch.equal(s1, s2) and torch.equal(m1, m2)
    assert s1.std() > 0  # a model that scores everything alike would pass trivially
    assert manifest2["thresholds"] == manifest["thresholds"]


def test_files_are_readable_as_the_umask_allows(tiny_ckpt, tmp_path):
    """A daemon running as another user (configs/inspector.service) must be able to load the checkpoint."""
    net, manifest = load_checkpoint(tiny_ckpt)
    before = os.umask(0o022)
    try:
        save_checkpoint(net, tmp_path / "shared", {k: manifest[k] for k in ("thresholds", "calibration", "options")})
    finally:
        os.umask(before)
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "shared").iterdir()} == {WEIGHTS: 0o644, MANIFEST: 0o644}


def test_an_unreadable_file_is_named_in_one_line(ckpt_copy):
    (ckpt_copy / WEIGHTS).unlink()
    (ckpt_copy / WEIGHTS).mkdir()  # unreadable even as root
    with pytest.raises(InspectorError, match=rf"{WEIGHTS}: cannot be read \(Is a directory\); check its permissions"):
        sha256_file(ckpt_copy / WEIGHTS)


def test_manifest_describes_the_model(tiny_ckpt):
    m = json.loads((tiny_ckpt / MANIFEST).read_text())
    assert m["net"]["backbone"] == "efficientnet-lite0"
    assert m["net"]["input_size"] == [64, 64] and m["net"]["layers"]
    assert "class_names" in m["net"]
    assert set(m["thresholds"]) >= {"image", "pixel"} and all(np.isfinite(v) for v in m["thresholds"].values())
    assert m["package_version"] == package_version()
    for name, digest in m["files"].items():  # hashes checked here independently of the loader
        assert hashlib.sha256((tiny_ckpt / name).read_bytes()).hexdigest() == digest


def test_weights_are_safetensors_not_pickle(tiny_ckpt):
    assert sorted(p.name for p in tiny_ckpt.iterdir()) == [MANIFEST, WEIGHTS]
    raw = (tiny_ckpt / WEIGHTS).read_bytes()
    assert not raw.startswith(b"\x80") and b"PK\x03\x04" not in raw[:64]  # neither pickle nor torch's zip format
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    assert tensors and all(set(v) == {"dtype", "shape", "data_offsets"} for v in tensors.values())
    assert max(v["data_offsets"][1] for v in tensors.values()) == len(raw) - 8 - n  # nothing after the tensor data


def _reseal(ckpt, **changes):
    m = json.loads((ckpt / MANIFEST).read_text())
    m.update(changes)
    m["files"] = list(m["files"])
    write_manifest(ckpt, m)


def test_tampered_weights_are_refused(ckpt_copy):
    raw = bytearray((ckpt_copy / WEIGHTS).read_bytes())
    raw[-1] ^= 0x01  # one bit in the last tensor
    (ckpt_copy / WEIGHTS).write_bytes(bytes(raw))
    with pytest.raises(InspectorError, match="sha256 does not match"):
        load_checkpoint(ckpt_copy)


def test_hand_edited_manifest_is_refused(ckpt_copy):
    m = json.loads((ckpt_copy / MANIFEST).read_text())
    m["thresholds"]["image"] = -1.0
    (ckpt_copy / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(InspectorError, match="manifest hash mismatch"):
        load_checkpoint(ckpt_copy)


def test_missing_files_are_refused(ckpt_copy, tmp_path):
    (ckpt_copy / WEIGHTS).unlink()
    with pytest.raises(InspectorError, match=f"{WEIGHTS} is missing"):
        load_checkpoint(ckpt_copy)
    (ckpt_copy / MANIFEST).unlink()
    with pytest.raises(InspectorError, match=f"no {MANIFEST} inside"):
        load_checkpoint(ckpt_copy)
    with pytest.raises(InspectorError, match="no such directory"):
        load_checkpoint(tmp_path / "never-written")


def test_garbage_manifest_is_refused(ckpt_copy):
    (ckpt_copy / MANIFEST).write_bytes(b"\x00\xffnot json")
    with pytest.raises(InspectorError, match="not valid JSON"):
        read_manifest(ckpt_copy)
    (ckpt_copy / MANIFEST).write_text('{"format": "something-else/9"}')
    with pytest.raises(InspectorError, match="format"):
        read_manifest(ckpt_copy)


def test_other_major_package_version_is_refused(ckpt_copy):
    major = int(package_version().split(".")[0].split("+")[0])
    _reseal(ckpt_copy, package_version=f"{major + 1}.0.0")
    with pytest.raises(InspectorError) as exc:
        load_checkpoint(ckpt_copy)
    assert f"written by inspector {major + 1}.0.0" in str(exc.value)
    _reseal(ckpt_copy, package_version=f"{major}.999.0")  # same major: accepted
    load_checkpoint(ckpt_copy)


def test_manifest_that_does_not_fit_the_weights_is_refused(ckpt_copy):
    net = json.loads((ckpt_copy / MANIFEST).read_text())["net"]
    _reseal(ckpt_copy, net={**net, "layers": [1, 2]})
    with pytest.raises(InspectorError, match="weights do not fit"):
        load_checkpoint(ckpt_copy)
    _reseal(ckpt_copy, net={**net, "input_size": "big"})
    with pytest.raises(InspectorError, match="'net' section is invalid"):
        load_checkpoint(ckpt_copy)
    _reseal(ckpt_copy, net={**net, "not_a_field": 1, "another": 2})  # from a later version: upgrading helps, refitting does not
    with pytest.raises(InspectorError, match=r"written by a newer inspector \(its model has settings this one does not know: "
                                             r"another, not_a_field\); upgrade inspector to load it"):
        load_checkpoint(ckpt_copy)


def test_a_model_from_before_the_learnt_branch_buffer_loads_as_it_scored(ckpt_copy, tiny_data):
    """Every model has carried `head.seg_norm` since the project's first day; the earliest checkpoints lack it, and were
    refused as 'from different models'. Without a learnt branch it is unused."""
    from safetensors.torch import load_file, save_file

    from tests.synthetic import defect_image

    net, _ = load_checkpoint(ckpt_copy)
    assert not net.config.seg_hidden
    state = load_file(ckpt_copy / WEIGHTS)
    del state["head.seg_norm"]
    save_file(state, ckpt_copy / WEIGHTS)
    _reseal(ckpt_copy)
    old, _ = load_checkpoint(ckpt_copy)
    x = torch.from_numpy(np.stack([defect_image(1, 64)[0], defect_image(2, 64)[0]]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    with torch.no_grad():
        for a, b in zip(net(x), old(x)):
            assert torch.equal(a, b)


def test_a_model_from_before_neighbours_measures_against_the_nearest_bank_patch():
    from model.net import NetConfig

    stored = NetConfig(bank_size=4, neighbours=3).to_dict()
    assert NetConfig.from_dict(stored).neighbours == 3
    del stored["neighbours"]
    assert NetConfig.from_dict(stored).neighbours == 1  # as it was fitted and calibrated


def test_save_refuses_a_file_as_directory(tiny_ckpt, tmp_path):
    net, manifest = load_checkpoint(tiny_ckpt)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InspectorError, match="is a file"):
        save_checkpoint(net, tmp_path / "file", {})


@pytest.mark.parametrize("target", ["c", "f/c"])
def test_save_that_cannot_write_is_one_line(tiny_ckpt, tmp_path, target):
    net, _ = load_checkpoint(tiny_ckpt)
    (tmp_path / "c" / "model.safetensors").mkdir(parents=True)  # the weights cannot be written there, even as root
    (tmp_path / "f").write_text("x")  # nor can a folder be made under a file
    with pytest.raises(InspectorError, match="checkpoint .*c: cannot be written"):
        save_checkpoint(net, tmp_path / target, {})


@pytest.mark.parametrize("how", ["disk full", "ctrl-c"])
def test_an_interrupted_save_leaves_the_old_checkpoint_whole(ckpt_copy, monkeypatch, how):

    net, manifest = load_checkpoint(ckpt_copy)
    before = sha256_file(ckpt_copy / WEIGHTS)
    with torch.no_grad():
        next(p for p in net.parameters() if p.dtype.is_floating_point).add_(1.0)  # other weights: a refit
    if how == "disk full":
        (ckpt_copy / f"{MANIFEST}.{os.getpid()}.tmp").mkdir()  # the manifest cannot be staged
        error = InspectorError
    else:
        import model.folders

        real = model.folders.write_new
        monkeypatch.setattr(model.folders, "write_new", lambda path, data: (_ for _ in ()).throw(KeyboardInterrupt)
                            if path.name.startswith(MANIFEST) else real(path, data))
        error = KeyboardInterrupt
    with pytest.raises(error):
        save_checkpoint(net, ckpt_copy, {k: manifest[k] for k in ("thresholds", "calibration", "options")})
    monkeypatch.undo()
    assert sha256_file(ckpt_copy / WEIGHTS) == before  # replaced before the manifest was: neither model loaded
    load_checkpoint(ckpt_copy)
    assert not list(ckpt_copy.glob(f"{WEIGHTS}.*.tmp"))


def test_ctrl_c_between_the_renames_waits_until_both_are_done(ckpt_copy, monkeypatch):
    import signal
    import threading
    from pathlib import Path

    net, manifest = load_checkpoint(ckpt_copy)
    with torch.no_grad():
        next(p for p in net.parameters() if p.dtype.is_floating_point).add_(1.0)
    stop = threading.Event()
    busy = threading.Thread(target=stop.wait)  # as torch's and tqdm's threads: the kernel may hand Ctrl-C to this one
    busy.start()
    real = Path.replace

    def replace(self, target):
        if Path(target).name == WEIGHTS:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C right as the weights land, before the manifest does
        return real(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own, whatever an earlier test left
    try:
        with pytest.raises(KeyboardInterrupt):  # it still stops the fit, once both files are in place
            save_checkpoint(net, ckpt_copy, {k: manifest[k] for k in ("thresholds", "calibration", "options")})
    finally:
        signal.signal(signal.SIGINT, before)
        stop.set()
        busy.join()
    monkeypatch.undo()
    reloaded, _ = load_checkpoint(ckpt_copy)  # the new weights under the old manifest before: neither loaded
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), net.state_dict().values(), strict=True))


def test_a_checkpoint_rewritten_while_it_loads_is_read_again_never_paired_with_the_old_manifest(ckpt_copy, tmp_path, monkeypatch):
    """`fit --force` landing between the manifest's check and the weights' load paired new weights with the old
    manifest (its thresholds and model id): 85 of 333 loads in a race. The weights are now loaded from the bytes hashed."""
    from pathlib import Path

    from model.folders import replace_files

    net, manifest = load_checkpoint(ckpt_copy)
    with torch.no_grad():
        next(iter(net.parameters())).add_(0.5)
    refit = save_checkpoint(net, tmp_path / "refit", {k: manifest[k] for k in ("thresholds", "calibration", "options")})
    assert refit["files"][WEIGHTS] != manifest["files"][WEIGHTS]
    read_bytes, swapped = Path.read_bytes, []

    def fit_lands_meanwhile(path):
        if path.name == WEIGHTS and not swapped:
            swapped.append(path)
            replace_files({ckpt_copy / n: (tmp_path / "refit" / n).read_bytes() for n in (WEIGHTS, MANIFEST)})
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", fit_lands_meanwhile)
    net2, manifest2 = load_checkpoint(ckpt_copy)
    assert swapped and manifest2["files"] == refit["files"]
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), net2.state_dict().values(), strict=True))


def test_a_load_between_a_writers_two_renames_waits_for_the_manifest(ckpt_copy, tmp_path, monkeypatch):
    """The weights are renamed in just before the manifest: a reader in between saw the new weights under the old
    manifest and called the checkpoint tampered (fatal for a daemon starting)."""
    import time
    from pathlib import Path

    net, manifest = load_checkpoint(ckpt_copy)
    with torch.no_grad():
        next(iter(net.parameters())).add_(0.5)
    refit = save_checkpoint(net, tmp_path / "refit", {k: manifest[k] for k in ("thresholds", "calibration", "options")})
    read_bytes, done, looks = Path.read_bytes, [], []

    def half_written(path):
        if path.name == WEIGHTS and not done:
            done.append(path)
            (ckpt_copy / WEIGHTS).write_bytes((tmp_path / "refit" / WEIGHTS).read_bytes())  # the first rename only
        elif path.name == MANIFEST and path.parent == ckpt_copy and done:
            # The writer's second rename lands 50 ms after its first: ordered by the reader's looks at the manifest, not
            # by a timer (a starved timer thread came after the reader had given up): the first look after the weights
            # still finds the old manifest, a look at least 50 ms later finds the new one.
            looks.append(time.monotonic())
            if len(looks) > 1 and looks[-1] - looks[0] >= 0.05 and not done[1:]:
                done.append(path)
                (ckpt_copy / MANIFEST).write_bytes((tmp_path / "refit" / MANIFEST).read_bytes())
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", half_written)
    assert load_checkpoint(ckpt_copy)[1]["files"] == refit["files"]
    assert done[1:], "the reader never looked at the manifest again 50 ms or more after the weights"
