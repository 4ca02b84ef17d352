"""`inspector serve` as a real process: SIGKILL mid-burst loses nothing, SIGTERM drains, last wills fire."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inspector.sparkplug import decode_payload
from tests.inspector.conftest import running, station_dict, wait_until

pytestmark = __import__("pytest").mark.slow


def serve(cfg_path: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "inspector", "serve", "--config", str(cfg_path)], stdout=out, stderr=subprocess.STDOUT)


def test_sigkill_mid_burst_then_sigterm_drain(tmp_path, broker, listen, tiny_ckpt, tiny_inspector, good_png):
    from inspector.config import StationConfig

    raw = station_dict(tmp_path, broker, tiny_ckpt, model={"batch_size": 4}, sparkplug={"enabled": True, "group_id": "g1", "device_id": "cam"})
    cfg_path = tmp_path / "station.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    cfg = StationConfig.model_validate(raw)
    log = tmp_path / "daemon.log"
    lst = listen(broker.port, cfg.mqtt.prefix, extra_topics=("spBv1.0/g1/#",))
    b64 = base64.b64encode(good_png).decode()

    def send(ids):
        infos = [lst.publish("trigger", json.dumps({"inspection_id": i, "base64": b64})) for i in ids]
        for info in infos:
            info.wait_for_publish(10)

    def status():
        s = lst.on("status")
        return s[-1][0] if s else None

    proc = serve(cfg_path, log)
    try:
        wait_until(lambda: status() == b"online" or proc.poll() is not None, 120, "daemon online")
        assert proc.poll() is None, log.read_text()[-2000:]
        burst = [f"k-{i:03d}" for i in range(150)]
        send(burst)
        wait_until(lambda: len(lst.result_ids()) >= 10, 60, "first results")
        proc.kill()  # SIGKILL mid-burst
        proc.wait(10)
        before = lst.result_ids()
        assert len(before & set(burst)) < len(burst), "the burst finished before the kill; nothing was tested"
        # the broker fired both last wills: status offline (retained) and the Sparkplug NDEATH of this session's bdSeq
        wait_until(lambda: status() == b"offline", 10, "last will offline")
        ndeath = wait_until(lambda: lst.on("spBv1.0/g1/NDEATH/st1"), 10, "NDEATH")[-1][0]
        nbirth = lst.on("spBv1.0/g1/NBIRTH/st1")[0][0]
        assert decode_payload(ndeath)["metrics"]["bdSeq"] == decode_payload(nbirth)["metrics"]["bdSeq"]
        ddata = [decode_payload(p) for p, _ in lst.on("spBv1.0/g1/DDATA/st1/cam")]
        assert ddata and [d["seq"] for d in ddata] == [(2 + i) % 256 for i in range(len(ddata))]  # NBIRTH 0, DBIRTH 1, then +1
        assert ddata[-1]["metrics"]["verdict"] in ("PASS", "FAIL") and ddata[-1]["metrics"]["counters/inspected"] == len(ddata)

        proc = serve(cfg_path, log)  # restart: journal recovery + the broker's redelivery of unacknowledged triggers
        wait_until(lambda: lst.result_ids() >= set(burst), 120, "every accepted trigger answered after the restart")
        assert not lst.on("error")
        # the kill left journaled work, now recovered (said once the last recovered job is queued: its result may come first)
        wait_until(lambda: "accepted job(s) from the journal" in log.read_text(), 30, "the recovery said in the log")

        # SIGTERM drains accepted work; triggers it never acknowledged wait at the broker for the next run
        drain = [f"g-{i:03d}" for i in range(60)]
        send(drain)
        wait_until(lambda: len(lst.result_ids() & set(drain)) >= 5, 60, "second burst under way")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        text = log.read_text()
        assert "drained: complete; 0 job(s) left in the journal, 0 result(s) not yet acknowledged" in text, text[-1500:]
        assert "Traceback" not in text
        wait_until(lambda: status() == b"offline", 5, "offline after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
    with running(cfg, tiny_inspector) as d:  # the next run (in-process) picks up the rest
        wait_until(lambda: lst.result_ids() >= set(drain), 60, "the rest of the second burst")
        assert d.store.counts()["pending"] == 0
    assert not lst.on("error")


@pytest.mark.parametrize("refused, said", [
    ({"model": {"path": "/nowhere/station3.ckpt"}}, "error: model /nowhere/station3.ckpt: no such file or directory;"),
    ({"mqtt": {"username": "station3", "password_env": "INSPECTOR_TEST_UNSET"}},
     "error: mqtt.password_env: environment variable INSPECTOR_TEST_UNSET is not set; export it or remove password_env"),
    ({"mqtt": {"tls": {"ca_file": "/nowhere/ca.crt"}}}, "error: mqtt.tls.ca_file /nowhere/ca.crt: no such file;"),
    ({"model": {"verify_good": ["/nowhere/good.png"]}}, "error: model.verify_good: /nowhere/good.png: no such file;"),
    ({"source": {"type": "video", "path": __file__}}, "error: source video:test_daemon_process.py: OpenCV cannot open"),  # a store before
])
def test_a_refused_start_leaves_no_store_behind(tmp_path, tiny_ckpt, refused, said):
    """serve with a missing model exited 2 but first created and locked its store; `inspector report` then found that
    empty store and wrote an empty report instead of saying there was none."""
    import os

    from inspector.config import deep_merge
    from inspector.demo.broker import free_port

    data = tmp_path / "var" / "station3"
    raw = deep_merge({"station": {"name": "st1"}, "model": {"path": str(tiny_ckpt)}, "source": {"type": "mqtt"},
                      "mqtt": {"prefix": "f/st1", "port": free_port()}, "store": {"data_dir": str(data)}, "http": {"port": 0}}, refused)
    (tmp_path / "station.yaml").write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in os.environ.items() if k != "INSPECTOR_TEST_UNSET"}
    done = subprocess.run([sys.executable, "-m", "inspector", "serve", "--config", str(tmp_path / "station.yaml")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(said) and len(done.stderr.splitlines()) == 1, done.stderr
    assert not (tmp_path / "var").exists()


def test_a_start_refused_after_the_store_was_made_removes_only_a_new_empty_store(tmp_path, tiny_ckpt):
    """The HTTP port taken is found after the store is made: a new, empty store goes again; one with records stays."""
    import socket

    from inspector.demo.broker import free_port
    from inspector.store import Store
    from reports.sample import make_records

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        for data, kept in ((tmp_path / "var" / "new", False), (tmp_path / "old", True)):
            if kept:
                store = Store(data)
                store.add(make_records(1, seed=1)[0])
                store.close()
            raw = {"station": {"name": "st1"}, "model": {"path": str(tiny_ckpt)}, "source": {"type": "mqtt"},
                   "mqtt": {"prefix": "f/st1", "port": free_port()}, "store": {"data_dir": str(data)},
                   "http": {"host": "127.0.0.1", "port": taken.getsockname()[1]}}
            (tmp_path / "station.yaml").write_text(yaml.safe_dump(raw))
            done = subprocess.run([sys.executable, "-m", "inspector", "serve", "--config", str(tmp_path / "station.yaml")],
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 2 and "cannot listen" in done.stderr.splitlines()[-1], done.stderr
            if kept:
                store = Store(data, readonly=True)
                assert store.count() == 1
                store.close()
            else:
                assert not (tmp_path / "var" / "new").exists() and (tmp_path / "var").is_dir()  # only what it made
    finally:
        taken.close()
