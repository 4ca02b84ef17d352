"""Concurrency and lifecycle: one Inspector shared by threads, the daemon's stop during inference, a reload
or start, reloads racing parts, and threads or descriptors left behind."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from inspector.api import Inspector
from inspector.daemon import Daemon
from tests.inspector.conftest import running, wait_until
from tests.synthetic import defect_image, good_image


def _summary(r) -> tuple:
    return (r.verdict, r.score, r.serial, r.inspection_id, [(x.box, x.area_px) for x in r.regions], r.anomaly_map.tobytes())


def test_one_inspector_called_from_many_threads_gives_the_serial_results(tiny_ckpt):
    """inspect() and inspect_batch() from 8 threads at once on one loaded Inspector: the results of serial calls, no error."""
    images = [good_image(i) for i in range(6)] + [defect_image(i)[0] for i in range(6)]
    with Inspector.load(tiny_ckpt) as insp:
        serial = [_summary(insp.inspect(img, serial=f"s{i}", inspection_id=f"id{i}")) for i, img in enumerate(images)]
        batch = [_summary(r) for r in insp.inspect_batch(images[:4], serials=["a", "b", "c", "d"], ids=["1", "2", "3", "4"])]
        start = threading.Barrier(8)

        def one(k: int) -> list:
            start.wait(30)
            got = []
            for rep in range(3):
                i = (k + rep) % len(images)
                got.append((i, _summary(insp.inspect(images[i], serial=f"s{i}", inspection_id=f"id{i}"))))
                got.append(("batch", [_summary(r) for r in insp.inspect_batch(images[:4], serials=["a", "b", "c", "d"], ids=["1", "2", "3", "4"])]))
            return got

        with ThreadPoolExecutor(8) as pool:
            for got in pool.map(one, range(8)):
                for key, value in got:
                    assert value == (batch if key == "batch" else serial[key])


class _CountingLock:
    """A lock that knows whether a thread waits for it."""

    def __init__(self) -> None:
        self._lock, self.waiting = threading.Lock(), 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.waiting += 1
        try:
            return self._lock.acquire(blocking, timeout)
        finally:
            self.waiting -= 1

    def release(self) -> None:
        self._lock.release()

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()


class _HeldEngine:
    """The tiny model's engine, whose inference of a part sent with the serial `hold` lasts until its engine is closed or
    someone waits to close it; it notes a close that came while it ran."""

    def __init__(self, real, lock: _CountingLock) -> None:
        self.real, self.meta, self.lock = real, real.meta, lock
        self.running = threading.Event()
        self.busy = self.closed = self.closed_while_busy = False
        self.hold = False

    def infer(self, batch):
        self.busy = True
        try:
            if self.hold:
                self.running.set()
                end = time.monotonic() + 60
                while not (self.closed or self.lock.waiting) and time.monotonic() < end:
                    time.sleep(0.01)
            return self.real.infer(batch)
        finally:
            self.busy = False

    def warmup(self) -> None:
        pass

    def close(self) -> None:
        self.closed_while_busy |= self.busy
        self.closed = True


def _send(lst, png: bytes, ids: list[str]) -> None:
    b64 = base64.b64encode(png).decode()
    for info in [lst.publish("trigger", json.dumps({"inspection_id": i, "base64": b64})) for i in ids]:
        info.wait_for_publish(10)


def _held_inspector(monkeypatch, real) -> tuple[Inspector, _HeldEngine]:
    """Inspector.load (the daemon's) made to give an Inspector of a _HeldEngine over `real`'s engine."""
    lock = _CountingLock()
    engine = _HeldEngine(real.engine, lock)
    held = Inspector(engine)
    held._shared.lock = lock
    monkeypatch.setattr(Inspector, "load", classmethod(lambda cls, model, device="cpu", decision=None, station=None:
                                                       (held.__setattr__("decision", decision), held.__setattr__("station", station), held)[-1]))
    return held, engine


def test_a_stop_while_a_part_is_inferred_closes_the_model_after_it_and_the_part_is_answered_at_the_next_start(
        station, listen, tiny_inspector, good_png, monkeypatch):
    """SIGTERM with a batch still in the engine past the drain: the daemon closed the engine under it (a TensorRT
    context freed mid-execution), ignoring the lock Inspector.close() waits on."""
    cfg = station(daemon={"drain_timeout_s": 0})
    lst = listen(cfg.mqtt.port, cfg.mqtt.prefix)
    _, engine = _held_inspector(monkeypatch, tiny_inspector)
    d = Daemon(cfg)
    d.start()
    try:
        engine.hold = True
        _send(lst, good_png, ["mid-1"])
        assert engine.running.wait(60), "the part never reached the engine"
    finally:
        d.shutdown()
    assert engine.closed and not engine.closed_while_busy, "the engine was closed while it inferred a part"
    assert "mid-1" not in lst.result_ids()
    with running(cfg, tiny_inspector):  # the part it was inferring stayed in the journal: answered now
        wait_until(lambda: "mid-1" in lst.result_ids(), 60, "the part inferred during the stop, answered after the restart")


def test_two_reloads_back_to_back_close_the_model_each_replaced_and_never_the_callers(station, tiny_ckpt, monkeypatch):
    """A reload that waited for another took the model in use as it was when it was asked: it closed that one (a
    second time, or the caller's own given Inspector: its next inspect() failed) and left the one it replaced open."""
    cfg = station()
    given = Inspector.load(tiny_ckpt)
    loaded: list[Inspector] = []
    first_in, go = threading.Event(), threading.Event()
    real_load = Daemon._load

    def load(self, section):
        out = real_load(self, section)
        loaded.append(out[0])
        if len(loaded) == 1:
            first_in.set()
            assert go.wait(60)
        return out

    monkeypatch.setattr(Daemon, "_load", load)
    with running(cfg, given) as d:
        outcomes: dict[str, dict] = {}
        first = threading.Thread(target=lambda: outcomes.setdefault("first", d.reload()))
        first.start()
        assert first_in.wait(60)
        second = threading.Thread(target=lambda: outcomes.setdefault("second", d.reload()))
        second.start()
        wait_until(lambda: d._reload_waiting, 30, "the second reload waiting for the first")
        go.set()
        first.join(60)
        second.join(60)
        assert outcomes["first"]["ok"] and outcomes["second"]["ok"]
        assert d.inspector is loaded[1]
        assert loaded[0]._shared.closed, "the model the second reload replaced was left open"
        assert d.inspector.inspect(good_image(1)).verdict in ("PASS", "FAIL")
    assert given.inspect(good_image(1)).verdict in ("PASS", "FAIL"), "the caller's own Inspector was closed"
    given.close()


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def test_a_served_station_stopped_leaves_no_thread_nor_descriptor_behind(station, listen, tiny_ckpt, good_png, tmp_path):
    """Start, a few parts and a reload, stop: the threads and file descriptors of before, the Daemon object still held
    (paho's wake-up socket pairs stayed open until the cyclic garbage collector freed the daemon's objects)."""
    import yaml

    cfg = station(http={"port": 0, "live": True}, sparkplug={"enabled": True, "group_id": "g1", "device_id": "cam"})
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    lst = listen(cfg.mqtt.port, cfg.mqtt.prefix)

    def serve_once(tag: str) -> Daemon:
        d = Daemon(cfg, config_path=path)
        d.start()
        try:
            ids = [f"leak-{tag}-{i}" for i in range(4)]
            _send(lst, good_png, ids)
            wait_until(lambda: set(ids) <= lst.result_ids(), 60, "the parts' results")
            assert d.reload()["ok"]
        finally:
            d.shutdown()
        return d

    serve_once("warm-up")  # what a process keeps once (imports, torch's pools)
    threads, fds = _threads(), _fds()
    held = serve_once("counted")
    wait_until(lambda: not {t for t in _threads() - threads if t.is_alive()}, 30, "the station's threads to end")
    try:
        wait_until(lambda: not (_fds() - fds), 30, "the station's descriptors to be closed")
    except AssertionError:
        raise AssertionError(f"left open: {_named(_fds() - fds)}") from None
    assert held.mqtt.state == "stopped"


def _named(fds: set[str]) -> list[str]:
    out = []
    for fd in sorted(fds):
        try:
            out.append(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            pass
    return out


def test_a_reload_to_a_bad_model_while_parts_arrive_keeps_the_old_one_and_is_said_once(station, listen, tiny_ckpt, good_png,
                                                                                        tmp_path, caplog):
    import shutil

    served = shutil.copytree(tiny_ckpt, tmp_path / "served.ckpt")
    cfg = station(model={"path": str(served), "batch_size": 2})
    lst = listen(cfg.mqtt.port, cfg.mqtt.prefix)
    with running(cfg, Inspector.load(served)) as d:
        model_id = d.inspector.engine.meta.model_id
        checks = []
        real_check = d.check
        d.check = lambda: (checks.append(1), real_check())[1]
        burst = [f"bad-{i:03d}" for i in range(40)]
        sender = threading.Thread(target=_send, args=(lst, good_png, burst))
        sender.start()
        wait_until(lambda: len(lst.result_ids()) >= 3, 60, "first results")
        weights = served / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
        assert d.reload()["ok"] is False
        sender.join(60)
        wait_until(lambda: set(burst) <= lst.result_ids(), 120, "every part of the burst")
        seen = len(checks)
        wait_until(lambda: len(checks) >= seen + 3, 30, "three more watchdog checks")
        assert {r["model"]["id"] for r in lst.json("result")} == {model_id}
        assert not lst.on("error")
        assert d.health()["model"]["last_reload"]["ok"] is False
    said = [r for r in caplog.records if "reload failed" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]


class _GateEngine:
    """The tiny model's engine, whose every batch waits for `gate`."""

    def __init__(self, real) -> None:
        self.real, self.meta = real, real.meta
        self.entered, self.gate = threading.Event(), threading.Event()

    def infer(self, batch):
        self.entered.set()
        assert self.gate.wait(120)
        return self.real.infer(batch)

    def warmup(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_second_sigterm_while_draining_stops_without_waiting_and_the_rest_is_answered_at_the_next_start(
        station, listen, tiny_inspector, good_png, monkeypatch, caplog):
    """A second SIGTERM or Ctrl-C while a stop drained a long queue did nothing: the station went on inferring for up to
    daemon.drain_timeout_s, though the journal keeps what is left for the next start."""
    import logging
    import shutil
    import signal
    import socket
    import tempfile

    caplog.set_level(logging.INFO, "inspector.daemon")
    folder = tempfile.mkdtemp(prefix="notify-")  # short: a unix socket's path is at most 107 bytes
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(f"{folder}/sock")
    notify.settimeout(120)
    monkeypatch.setenv("NOTIFY_SOCKET", f"{folder}/sock")
    cfg = station(model={"batch_size": 1}, daemon={"drain_timeout_s": 120})
    lst = listen(cfg.mqtt.port, cfg.mqtt.prefix)
    engine = _GateEngine(tiny_inspector.engine)
    d = Daemon(cfg, inspector=Inspector(engine))
    ids = [f"hurry-{i:02d}" for i in range(20)]
    failed: list[BaseException] = []

    def until(state: str) -> None:
        while state not in notify.recv(4096).decode().split("\n"):
            pass

    def signaller() -> None:
        try:
            until("READY=1")  # sent once the daemon's own SIGTERM handler is in place
            _send(lst, good_png, ids)
            assert engine.entered.wait(60)
            wait_until(lambda: d.jobs.qsize() >= 5, 60, "parts queued behind the one in the engine")
            os.kill(os.getpid(), signal.SIGTERM)
            until("STOPPING=1")
            os.kill(os.getpid(), signal.SIGTERM)
            wait_until(lambda: "asked again to stop" in caplog.text, 30, "the second SIGTERM said")
        except BaseException as exc:  # noqa: BLE001 - raised in the test's thread below
            failed.append(exc)
            d.stop()  # run() ends whatever this thread got to
        finally:
            engine.gate.set()

    helper = threading.Thread(target=signaller)
    helper.start()
    try:
        assert d.run() == 0
    finally:
        engine.gate.set()
        helper.join(60)
        notify.close()
        shutil.rmtree(folder, ignore_errors=True)
    if failed:
        raise failed[0]
    assert "drained: cut short;" in caplog.text and not re.search(r"\b0 job\(s\) left in the journal", caplog.text)  # 10 left is not 0
    with running(cfg, tiny_inspector):  # what was left in the journal, and what the broker kept unacknowledged
        wait_until(lambda: set(ids) <= lst.result_ids(), 60, "every part after the restart")
    assert not lst.on("error")


def test_a_stop_during_a_reload_ends_without_it_and_the_model_it_loaded_is_closed(station, tiny_ckpt, monkeypatch):
    cfg = station()
    inside, go = threading.Event(), threading.Event()
    loaded: list[Inspector] = []
    real_load = Daemon._load

    def load(self, section):
        out = real_load(self, section)
        loaded.append(out[0])
        if len(loaded) == 2:  # the reload's, not the start's
            inside.set()
            assert go.wait(60)
        return out

    monkeypatch.setattr(Daemon, "_load", load)
    d = Daemon(cfg)
    d.start()
    first = d.inspector
    outcome: dict = {}
    reload = threading.Thread(target=lambda: outcome.update(d.reload()))
    try:
        reload.start()
        assert inside.wait(60)
    finally:
        d.shutdown()  # does not wait for the reload
        go.set()
    reload.join(60)
    assert outcome["ok"] is False and outcome["error"] == "the station is stopping"
    assert first._shared.closed and loaded[1]._shared.closed and d.inspector is first


def test_inspector_reload_finds_its_outcome_though_the_clock_stepped_back(station, tiny_ckpt, tmp_path, monkeypatch, capsys):
    """`inspector reload` took the outcome for its own when the reload began at or after the wall-clock time it sent
    SIGHUP: a clock stepped back in between (NTP correcting a fast clock) hid a reload that worked, and after 80 s
    `systemctl reload` failed."""
    import signal

    import yaml

    import inspector.result
    from inspector.cli import main
    from inspector.demo.broker import free_port

    cfg = station(http={"port": free_port()})
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    with running(cfg, Inspector.load(tiny_ckpt)) as d:
        assert d.reload()["ok"]  # an earlier outcome, which must not be taken for this one's
        before = signal.signal(signal.SIGHUP, lambda *_: d._reload_in_background())  # as run() has it
        try:
            # the command's clock ahead of the station's: the station's is as if stepped back after the signal
            monkeypatch.setattr(inspector.result, "utc_now", lambda: "2999-01-01T00:00:00.000Z")
            assert main(["reload", "--config", str(path), "--pid", str(os.getpid()), "--timeout", "60"]) == 0, capsys.readouterr().err
        finally:
            signal.signal(signal.SIGHUP, before)
        assert d.health()["model"]["last_reload"]["number"] == 2
    assert "station st1: reloaded model" in capsys.readouterr().out
