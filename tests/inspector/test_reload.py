"""A running station takes a new threshold, model or config model section on reload (SIGHUP), between batches,
and keeps the model it has when the new one cannot be loaded."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading

import pytest
import yaml

from inspector.api import Inspector
from inspector.cli import main
from inspector.config import StationConfig
from inspector.daemon import RELOAD_FAILED, Daemon
from inspector.decision import DecisionConfig
from model.errors import InspectorError
from tests.inspector.conftest import running, serving, station_dict, wait_until


@pytest.fixture
def served(tiny_ckpt, tmp_path):
    """A copy of the tiny checkpoint that a test may change under the running station."""
    return shutil.copytree(tiny_ckpt, tmp_path / "served.ckpt")


def send(lst, good_png: bytes, ids: list[str]) -> None:
    b64 = base64.b64encode(good_png).decode()
    for info in [lst.publish("trigger", json.dumps({"inspection_id": i, "base64": b64})) for i in ids]:
        info.wait_for_publish(10)


def results(lst) -> dict[str, dict]:
    return {r["inspection_id"]: r for r in lst.json("result")}


def test_a_new_threshold_is_used_after_a_reload_and_parts_sent_meanwhile_are_all_answered(station, served, listen, good_png, capsys):
    """`inspector threshold` on a served checkpoint took a restart; the line stopped for it."""
    cfg = station(model={"path": str(served), "batch_size": 2})
    lst = listen(cfg.mqtt.port, cfg.mqtt.prefix)
    with running(cfg, Inspector.load(served)) as d:
        old = d.inspector.image_threshold
        assert main(["threshold", str(served), "--set", "123.5"]) == 0
        assert "changed_on_disk" in d.health()["model"]
        burst = [f"r-{i:03d}" for i in range(60)]
        sender = threading.Thread(target=send, args=(lst, good_png, burst))
        sender.start()
        wait_until(lambda: len(results(lst)) >= 5, 60, "first results")
        assert d.reload()["ok"] is True
        sender.join(60)
        wait_until(lambda: set(burst) <= lst.result_ids(), 120, "every part of the burst")
        got = results(lst)
        thresholds = [got[i]["threshold"] for i in burst]
        assert thresholds[0] == pytest.approx(old) and thresholds[-1] == 123.5
        switched = thresholds.index(123.5)
        assert 0 < switched and set(thresholds[switched:]) == {123.5}, "a part judged with the old threshold after the new one"
        model = d.health()["model"]
        assert model["image_threshold"] == 123.5 and "changed_on_disk" not in model and d.health()["status"] == "ok"
        assert model["last_reload"]["ok"] is True and model["last_reload"]["model"] == model["id"]
        assert "inspector_model_reloads_total{outcome=\"ok\"} 1" in d.render_metrics()
    assert not lst.on("error")
    capsys.readouterr()


def test_a_tampered_model_is_refused_on_reload_and_the_loaded_one_goes_on_inspecting(station, served, listen, good_png):
    cfg = station(model={"path": str(served)})
    lst = listen(cfg.mqtt.port, cfg.mqtt.prefix)
    with running(cfg, Inspector.load(served)) as d:
        model_id = d.inspector.engine.meta.model_id
        weights = served / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
        assert d.reload()["ok"] is False
        health = d.health()
        assert health["model"]["last_reload"]["ok"] is False and "sha256" in health["model"]["last_reload"]["error"].lower()
        assert health["model"]["id"] == model_id
        assert health["status"] == "degraded" and RELOAD_FAILED in health["degraded"]  # "ok" before: nobody saw it
        # nor that the next start (a crash, a reboot) would be refused with these files, and stay down (the unit's exit 2)
        assert "a restart would fail the same way" in RELOAD_FAILED
        send(lst, good_png, ["after-failed-reload"])
        got = wait_until(lambda: results(lst).get("after-failed-reload"), 60, "a result after the failed reload")
        assert got["model"]["id"] == model_id
        assert "inspector_model_reloads_total{outcome=\"failed\"} 1" in d.render_metrics()


def test_a_reload_command_over_mqtt_replies_with_its_outcome(station, served, listen, good_png):
    """A line controller that pushed a new threshold had no way to apply it but a shell on the box (SIGHUP)."""
    cfg = station(model={"path": str(served)})
    lst = listen(cfg.mqtt.port, cfg.mqtt.prefix)
    with running(cfg, Inspector.load(served)) as d:
        model_id, before = d.inspector.engine.meta.model_id, d.health()["model"]
        assert main(["threshold", str(served), "--set", "77.0", "--pixel", "5.5"]) == 0
        lst.publish("command", json.dumps({"command": "reload"}), correlation=b"r1")
        (body, corr), = wait_until(lambda: lst.on("report"), 60, "the reload's reply")
        reply = json.loads(body)
        assert corr == b"r1" and reply["command"] == "reload" and reply["ok"] is True and reply["image_threshold"] == 77.0
        assert reply["was"] == model_id and reply["model"] == d.health()["model"]["id"]
        # the id alone read "model 6fe58d7679eb, was 6fe58d7679eb" for a checkpoint swapped for its INT8 export, and no
        # pixel threshold was said: the file, its runtime and both thresholds, now and before
        assert reply["pixel_threshold"] == 5.5 and reply["runtime"] == before["runtime"] == "torch-cpu"
        assert reply["path"] == before["path"] == d.health()["model"]["path"]
        assert reply["previous"] == {"model": model_id, "runtime": "torch-cpu", "path": before["path"],
                                     "image_threshold": before["image_threshold"], "pixel_threshold": before["pixel_threshold"]}
        assert d.health()["model"]["last_reload"]["pixel_threshold"] == 5.5
        send(lst, good_png, ["after-command"])
        assert wait_until(lambda: results(lst).get("after-command"), 60, "a result after the reload")["threshold"] == 77.0

        with d._reloading:  # one reload at a time: a second waits for it (dropped, a config edit's reload was lost), a third is answered
            lst.publish("command", json.dumps({"command": "reload"}), correlation=b"r2")
            wait_until(lambda: d._reload_waiting, 30, "the second reload waiting")
            lst.publish("command", json.dumps({"command": "reload"}), correlation=b"r2b")
            (body, corr), = wait_until(lambda: lst.on("error"), 60, "the busy reply")
            assert not [c for _, c in lst.on("report") if c == b"r2"]
        assert corr == b"r2b" and "already waits to run after the one running" in json.loads(body)["error"]
        wait_until(lambda: [c for _, c in lst.on("report") if c == b"r2"], 60, "the waiting reload run and answered")

        weights = served / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
        lst.publish("command", json.dumps({"command": "reload"}), correlation=b"r3")
        wait_until(lambda: len(lst.on("error")) == 2, 60, "the failed reload's reply")
        body, corr = lst.on("error")[1]
        error = json.loads(body)["error"]
        assert corr == b"r3" and error.startswith(f"command: reload failed; parts go on with model {reply['model']}: ") and "sha256" in error.lower()
        lst.publish("command", json.dumps({"command": "reload", "model": "other.ckpt"}))
        wait_until(lambda: len(lst.on("error")) == 3, 60, "the bad command's reply")
        assert json.loads(lst.on("error")[2][0])["error"] == "command: unknown field 'model'"
        assert len(lst.on("report")) == 2 and d.health()["model"]["id"] == reply["model"]


def test_a_model_that_misjudges_a_verification_image_neither_starts_nor_replaces_the_one_in_use(station, served, tiny_ckpt, tiny_data,
                                                                                               listen, good_png):
    """The known-good / known-bad check: a threshold raised past a known defect reached the line at the next reload."""
    good, defect = str(tiny_data / "test" / "good" / "000.png"), str(tiny_data / "test" / "blob" / "000.png")
    cfg = station(model={"path": str(served), "verify_good": [good], "verify_defect": [defect]})
    lst = listen(cfg.mqtt.port, cfg.mqtt.prefix)
    with running(cfg, Inspector.load(served)) as d:
        threshold = d.inspector.image_threshold
        assert d.health()["model"]["verified"] == {"good": 1, "defect": 1}
        assert main(["threshold", str(served), "--set", "1e6"]) == 0  # every part would pass
        outcome = d.reload()
        assert outcome["ok"] is False and d.inspector.image_threshold == threshold
        assert f"misjudged 1 of its 2 verification images: model.verify_defect {defect} PASS at score" in outcome["error"]
        send(lst, good_png, ["after"])
        assert wait_until(lambda: results(lst).get("after"), 60, "a result with the model in use")["threshold"] == threshold
    swapped = station(model={"path": str(tiny_ckpt), "verify_good": [defect]})
    daemon = Daemon(swapped)  # loads its own model, as `serve` does
    with pytest.raises(InspectorError, match=rf"misjudged 1 of its 1 verification images: model.verify_good {defect} FAIL"):
        daemon.start()
    assert daemon.inspector.engine.net is None  # the engine it loaded is closed, not held until exit
    missing = station(model={"path": str(tiny_ckpt), "verify_defect": [str(tiny_data / "nope.png")]})
    with pytest.raises(InspectorError, match=r"^model.verify_defect: .*nope.png"):
        with running(missing, Inspector.load(tiny_ckpt)):
            pass


def test_reload_reads_the_config_files_model_section_and_names_what_takes_a_restart(tmp_path, broker, served, tiny_ckpt, caplog):
    raw = station_dict(tmp_path, broker, served)
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = StationConfig.model_validate(raw)
    with running(cfg, Inspector.load(served), config_path=path) as d:
        raw["model"]["image_threshold"] = 7.25
        raw["model"]["queue_size"] = 5
        raw["mqtt"]["keepalive_s"] = 9
        path.write_text(yaml.safe_dump(raw))
        with caplog.at_level("INFO", logger="inspector.daemon"):
            assert d.reload()["ok"] is True
        assert d.inspector.image_threshold == 7.25 and d.cfg.model.queue_size == 1000
        assert d.health()["model"]["last_reload"]["restart_needed_for"] == ["mqtt", "model.queue_size"]
        assert "mqtt, model.queue_size changed and take effect at the next start" in caplog.text

        raw["model"]["image_treshold"] = 1.0  # a typo: the whole file is refused, the station keeps what it has
        path.write_text(yaml.safe_dump(raw))
        assert d.reload()["ok"] is False
        assert "image_treshold" in d.health()["model"]["last_reload"]["error"] and d.inspector.image_threshold == 7.25

        del raw["model"]["image_treshold"]
        raw["model"]["path"] = str(tmp_path / "nowhere.ckpt")
        path.write_text(yaml.safe_dump(raw))
        assert d.reload()["ok"] is False
        assert "nowhere.ckpt" in d.health()["model"]["last_reload"]["error"]

        raw["model"]["path"] = str(tiny_ckpt)  # another model: its files are the ones watched from now on
        path.write_text(yaml.safe_dump(raw))
        assert d.reload()["ok"] is True
        assert d.health()["model"]["path"] == str(tiny_ckpt) and "changed_on_disk" not in d.health()["model"]


@pytest.mark.slow
def test_sighup_reloads_a_served_model(tmp_path, broker, listen, served, good_png, capsys):
    """`inspector reload` (the unit's ExecReload) sends SIGHUP and waits for the outcome: `kill -HUP` said ok for a
    reload that failed, so `systemctl reload` did too."""
    from inspector.demo.broker import free_port

    raw = station_dict(tmp_path, broker, served, http={"port": free_port()})
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(raw))
    log = tmp_path / "daemon.log"
    lst = listen(broker.port, raw["mqtt"]["prefix"])
    with serving(["-m", "inspector", "serve", "--config", str(path)], log, lst) as proc:
        assert main(["threshold", str(served), "--set", "42.0"]) == 0
        capsys.readouterr()
        assert main(["reload", "--config", str(path), "--pid", str(proc.pid)]) == 0
        out, err = capsys.readouterr()
        assert "station st1: reloaded model" in out and "image threshold 42" in out, err
        assert "reloaded: model" in log.read_text()
        send(lst, good_png, ["after-sighup"])
        got = wait_until(lambda: results(lst).get("after-sighup"), 60, "a result after SIGHUP")
        assert got["threshold"] == 42.0

        weights = served / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-8])  # a half-copied refit
        assert main(["reload", "--config", str(path)]) == 1  # the process from /health
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: station st1: the reload failed, and parts go on with model") and "\n" not in err
        assert "model.safetensors" in err
        # a process that takes the signal and reloads nothing: no outcome comes (a 0.01 s wait raced the station's)
        deaf = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGHUP, signal.SIG_IGN); time.sleep(600)"])
        try:
            assert main(["reload", "--config", str(path), "--pid", str(deaf.pid), "--timeout", "1"]) == 1
            assert "no reload outcome within 1 s" in capsys.readouterr().err
        finally:
            deaf.kill()
            deaf.wait()


def test_a_config_threshold_over_the_models_own_is_said_on_health_and_at_a_reload(station, served):
    """`inspector threshold --set` then a reload reported ok and cleared changed_on_disk, while the config's
    model.image_threshold went on judging the parts: nothing said the change was discarded."""
    cfg = station(model={"path": str(served), "image_threshold": 6.0})
    with running(cfg, Inspector.load(served, decision=DecisionConfig(image_threshold=6.0))) as d:
        assert main(["threshold", str(served), "--set", "9"]) == 0
        outcome = d.reload()
        model = d.health()["model"]
        assert outcome["ok"] and model["image_threshold"] == 6.0
        assert model["threshold_override"] == "image_threshold 6 from the config (the model's own: 9); `inspector threshold` does not change it"
        assert outcome["threshold_override"] == model["threshold_override"]


def test_the_same_files_copied_again_or_a_file_dropped_beside_them_are_no_change_on_disk(station, served, tiny_ckpt, tmp_path_factory,
                                                                                       tmp_path):
    """A deploy that copied the same model again (new times, same bytes), or a .DS_Store or manifest.json.bak left in
    the model's folder, turned /health degraded ('the model's files changed since it was loaded') until a reload."""
    import os

    from tests.exporters.helpers import copy_export, exported

    with running(station(model={"path": str(served)}), Inspector.load(served)) as d:
        for f in served.iterdir():
            os.utime(f, (1e9, 1e9))
        (served / "manifest.json.bak").write_bytes((served / "manifest.json").read_bytes())
        assert "changed_on_disk" not in d.health()["model"] and d.health()["status"] == "ok"
        assert main(["threshold", str(served), "--set", "123.5"]) == 0  # a real change still is one
        assert "changed_on_disk" in d.health()["model"]
    exports = exported(tiny_ckpt, tmp_path_factory.mktemp("exports"))
    folder = copy_export(exports["onnx"], tmp_path / "served_exports").parent
    with running(station(model={"path": str(folder)}), Inspector.load(folder)) as d:
        for name in (".DS_Store", "._model.onnx", "model.onnx.json.bak"):
            (folder / name).write_bytes(b"\x00\x05\x16\x07")
        os.utime(folder / "model.onnx", (1e9, 1e9))
        assert "changed_on_disk" not in d.health()["model"]
        copy_export(exports["onnx-fp16"], folder)
        assert "changed_on_disk" in d.health()["model"]


def test_changes_that_would_refuse_the_next_start_are_changes_on_disk(station, served, tiny_ckpt, tmp_path_factory, tmp_path):
    """Weights copied over a served checkpoint's, or a second export put beside the one served from a folder: /health
    said ok (only the manifest, or the export file, was stamped), and the next reload or start refused the model."""
    from tests.exporters.helpers import copy_export, exported

    with running(station(model={"path": str(served)}), Inspector.load(served)) as d:
        assert "changed_on_disk" not in d.health()["model"]
        weights = served / "model.safetensors"
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1  # the same size
        weights.write_bytes(bytes(data))
        assert "changed_on_disk" in d.health()["model"]
        assert d.reload()["ok"] is False  # as a restart would be
    exports = exported(tiny_ckpt, tmp_path_factory.mktemp("exports"))
    folder = copy_export(exports["onnx"], tmp_path / "served_exports").parent
    with running(station(model={"path": str(folder)}), Inspector.load(folder)) as d:
        assert "changed_on_disk" not in d.health()["model"]
        copy_export(exports["onnx-fp16"], folder)
        assert "changed_on_disk" in d.health()["model"]
        assert "holds several exported models" in d.reload()["error"]


def test_reload_without_a_station_to_answer_is_one_line(tmp_path, broker, served, capsys):
    from inspector.demo.broker import free_port
    from tests.cli import assert_one_line_error, cli

    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(station_dict(tmp_path, broker, served, http={"port": free_port()})))
    rc, _, err = cli(capsys, "reload", "--config", path)
    assert_one_line_error(rc, err, f"station {path}: http://127.0.0.1:", "does not answer", "is the station running")
    off = tmp_path / "off.yaml"
    off.write_text(yaml.safe_dump(station_dict(tmp_path, broker, served)))  # http.port 0: where /health is is not known
    rc, _, err = cli(capsys, "reload", "--config", off)
    assert_one_line_error(rc, err, "its /health is off", "give --pid")
    sleeper = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGHUP, lambda *a: print('hup', flush=True)); "
                                "print('ready', flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert sleeper.stdout.readline() == "ready\n"
        rc, _, err = cli(capsys, "reload", "--config", off, "--pid", sleeper.pid)  # signalled still, as `kill -HUP` did
        assert rc == 0 and "the outcome is only in its log" in err
        assert sleeper.stdout.readline() == "hup\n"
        rc, out, _ = cli(capsys, "reload", "--config", off, "--pid", sleeper.pid, "--json")  # stdout was empty: no JSON to read
        assert rc == 0 and json.loads(out) == {"station": "st1", "pid": sleeper.pid, "signalled": True, "outcome": None}
        assert sleeper.stdout.readline() == "hup\n"
    finally:
        sleeper.kill()
        sleeper.wait()
    rc, _, err = cli(capsys, "reload", "--config", off, "--pid", sleeper.pid)
    assert_one_line_error(rc, err, f"--pid {sleeper.pid}: no such process")
