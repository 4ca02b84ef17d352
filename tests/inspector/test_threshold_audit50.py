"""Audit of how a station's PASS/FAIL line is set and served: `inspector threshold`, calibration notes, /health."""

from __future__ import annotations

import json
import shutil

import pytest

from model.calibration import Policy, unresolved_note
from tests.cli import cli


@pytest.fixture()
def ckpt(tmp_path, tiny_ckpt):
    """A copy of the tiny checkpoint (threshold rewrites it)."""
    out = tmp_path / "ck"
    shutil.copytree(tiny_ckpt, out)
    return out


def test_a_vanishing_target_is_noted_not_a_traceback(ckpt, capsys):
    """--far 1e-320 passes the [0, 1) check; 1 / target was infinite (OverflowError), and 1e-300 printed a 301-digit count."""
    for kind in ("far", "escape"):
        note = unresolved_note(Policy(kind, 1e-320), 20, 6)
        assert "that takes over 10^12" in note
        assert len(unresolved_note(Policy(kind, 1e-300), 20, 6)) < 300
    rc, out, err = cli(capsys, "threshold", ckpt, "--far", "1e-320", "--json")
    assert rc == 0, err
    shown = json.loads(out)
    assert shown["written"] is True and "that takes over 10^12" in shown["note"]
    assert json.loads((ckpt / "manifest.json").read_text())["calibration"]["policy"] == {"kind": "far", "target": 1e-320}
