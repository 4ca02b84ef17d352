"""How a station's PASS/FAIL line is set and served: `inspector threshold`, calibration notes, /health."""

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


def _get(port: int, path: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_threshold_of_a_checkpoint_loads_no_torch(ckpt):
    """Showing or setting a checkpoint's thresholds edits its manifest; reading the manifest imported torch (2.4 s of
    the command's 2.6 s in a process of its own: in a test's, torch is always there already)."""
    import subprocess
    import sys

    code = ("import sys; from inspector.cli import main; rc = main(['threshold', sys.argv[1], '--set', '4']); "
            "print(rc, 'torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code, str(ckpt)], capture_output=True, text=True, timeout=120)
    assert run.stdout.splitlines()[-1] == "0 False", (run.stdout, run.stderr)


def test_health_that_cannot_be_gathered_is_answered_failing_and_logged_once(caplog):
    """The store's disk failing under /health's counts left the request unanswered (a monitor read 'no reply'), its
    cause logged at debug only; a failing live view logged a traceback at each 2 s reload."""
    import logging
    import sqlite3

    from inspector.health import HealthServer

    broken = [True]

    def health() -> dict:
        if broken[0]:
            raise sqlite3.DatabaseError("database disk image is malformed")
        return {"status": "ok"}

    def metrics() -> str:
        raise sqlite3.OperationalError("disk I/O error")

    def live() -> bytes:
        raise ValueError("no overlay")

    server = HealthServer("127.0.0.1", 0, health, metrics, live)
    server.start()
    try:
        with caplog.at_level(logging.DEBUG, logger="inspector.health"):
            for _ in range(3):
                code, body = _get(server.port, "/health")
                assert code == 503
                shown = json.loads(body)
                assert shown["status"] == "failing"
                assert shown["problems"] == ["/health could not be gathered: DatabaseError: database disk image is malformed; see the daemon log"]
                assert _get(server.port, "/metrics") == (500, b"the metrics could not be gathered; see the daemon log\n")
                assert _get(server.port, "/")[0] == 500
            broken[0] = False
            assert _get(server.port, "/health") == (200, b'{\n "status": "ok"\n}')
            broken[0] = True
            assert _get(server.port, "/health")[0] == 503  # failing again after it recovered: logged again
    finally:
        server.stop()
    tracebacks = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert sorted(tracebacks) == sorted(["http: /health could not be gathered"] * 2 + ["http: /metrics could not be gathered",
                                                                                      "http: the live view could not be gathered"])


def _station(tmp_path, ckpt, **model) -> str:
    cfg = {"station": {"name": "st1"}, "source": {"type": "mqtt"}, "mqtt": {"prefix": "f/st1"},
           "store": {"data_dir": str(tmp_path / "data")}, "http": {"port": 0}, "model": {"path": str(ckpt), **model}}
    path = tmp_path / f"st-{len(list(tmp_path.glob('st-*')))}.yaml"
    path.write_text(json.dumps(cfg))
    return str(path)


def test_a_change_a_station_overrides_is_said_for_the_pixel_threshold_and_without_verification_images(ckpt, tiny_data, capsys, tmp_path):
    """A station whose config sets model.pixel_threshold kept its regions at that line while `threshold --pixel --config`
    said only that its images were judged right; one listing no verification images hid its image override too."""
    images = {"verify_good": [str(tiny_data / "test" / "good" / "000.png")], "verify_defect": [str(tiny_data / "test" / "blob" / "000.png")]}
    pixel_own = _station(tmp_path, ckpt, pixel_threshold=3.0, **images)
    rc, out, err = cli(capsys, "threshold", ckpt, "--pixel", "7.5", "--config", pixel_own, "--json")
    assert rc == 0, err
    (said,) = json.loads(out)["stations"]
    assert said["checked"].endswith("; its own model.pixel_threshold 3 overrides the model's, so the new pixel threshold does not "
                                    "reach its defect regions")
    assert "image_threshold" not in said["checked"]  # unchanged, and not overridden

    image_own = _station(tmp_path, ckpt, image_threshold=2.0)
    rc, out, err = cli(capsys, "threshold", ckpt, "--set", "9", "--config", image_own)
    assert rc == 0, err
    assert (f"station {image_own}: lists no verification images (model.verify_good, model.verify_defect): nothing judged; its own "
            "model.image_threshold 2 overrides the model's, so the new image threshold does not reach its verdicts") in out
    rc, out, err = cli(capsys, "threshold", ckpt, "--pixel", "8", "--config", image_own)  # the image threshold is not changed
    assert rc == 0 and "overrides" not in out, err


def test_dry_run_says_the_policy_a_kept_threshold_would_answer_to(ckpt, capsys):
    """--far landing on the threshold the fitted --escape had: the run rewrites the manifest for the new policy, and says
    so, but --dry-run said only 'unchanged; nothing written', hiding that change."""
    before = (ckpt / "manifest.json").read_bytes()
    policy = json.loads(before)["calibration"]["policy"]
    assert policy["kind"] == "escape"
    rc, out, err = cli(capsys, "threshold", ckpt, "--far", "0", "--json")  # the target that lands where the escape one did
    landed = json.loads(out)
    (ckpt / "manifest.json").write_bytes(before)
    if landed["previous"] is not None:
        pytest.skip("on this model --far 0 does not land on the fitted threshold")
    rc, out, err = cli(capsys, "threshold", ckpt, "--far", "0", "--dry-run")
    assert rc == 0, err
    assert out.splitlines()[0].endswith("(unchanged; it would answer to --far 0.0; nothing written (--dry-run))")
    assert (ckpt / "manifest.json").read_bytes() == before
    rc, out, err = cli(capsys, "threshold", ckpt, "--far", "0")
    assert rc == 0 and out.splitlines()[0].endswith("(unchanged; it now answers to --far 0.0)"), err


@pytest.mark.parametrize(("field", "value"), [("mm_per_px", float("nan")), ("mm_per_px", float("inf")), ("mm_per_px", -0.1), ("mm_per_px", 1e160),
                                              ("mm_per_px", "0.1"), ("max_regions", 0), ("max_regions", -1), ("max_regions", 2.5),
                                              ("min_region_px", -5), ("unknown_cutoff", float("nan")), ("unknown_cutoff", 1.5)])
def test_region_rules_of_a_decision_config_are_checked(tiny_ckpt, field, value):
    """mm_per_px=nan recorded every region as 0.0 mm2, inf was an OverflowError at the first FAIL, max_regions=0 or -1
    FAILed parts with no region shown: one line naming the field now, when the Inspector is made."""
    from inspector.api import Inspector
    from inspector.decision import DecisionConfig
    from model.errors import InspectorError

    with pytest.raises(InspectorError, match=rf"^DecisionConfig {field}=.*: give "):
        Inspector.load(tiny_ckpt, decision=DecisionConfig(**{field: value}))


def test_valid_region_rules_are_kept(tiny_ckpt):
    from inspector.api import Inspector
    from inspector.decision import DecisionConfig

    with Inspector.load(tiny_ckpt, decision=DecisionConfig(mm_per_px=2, max_regions=3, min_region_px=0, unknown_cutoff=1)) as insp:
        d = insp.decision
        assert (d.mm_per_px, d.max_regions, d.min_region_px, d.unknown_cutoff) == (2.0, 3, 0, 1.0)
        assert isinstance(d.mm_per_px, float)


def test_a_station_config_whose_model_is_missing_or_on_a_device_not_here(ckpt, tiny_data, capsys, tmp_path):
    """--config of a station whose model.path is gone said 'model X: no such file', naming neither the config nor its
    field; one serving on cuda, checked from a desk without it, said '--device cuda: ...', an option nobody gave."""
    import torch

    from tests.cli import assert_one_line_error

    gone = _station(tmp_path, tmp_path / "nowhere")
    rc, _, err = cli(capsys, "threshold", ckpt, "--set", "5", "--config", gone)
    assert_one_line_error(rc, err, f"--config {gone}: model.path: ", "nowhere")
    if torch.cuda.is_available():
        pytest.skip("this machine has cuda: the station's device is used as it is")
    on_cuda = _station(tmp_path, ckpt, device="cuda", verify_good=[str(tiny_data / "test" / "good" / "000.png")])
    rc, out, err = cli(capsys, "threshold", ckpt, "--set", "9", "--config", on_cuda, "--dry-run")
    assert rc == 0, err
    assert (f"station {on_cuda}: its 1 good and 0 defect verification images are judged right at image threshold 9 "
            "(on cpu: this machine cannot run its model.device cuda)") in out
