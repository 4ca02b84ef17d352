"""A station that runs for weeks: the long-lived memories of its parts stay bounded, each driven here with many synthetic
entries rather than by a timed soak."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from inspector.config import FolderSource
from inspector.sources import NUMBERED_KEPT, FolderWatcher


def watcher(folder: Path) -> FolderWatcher:
    folder.mkdir(exist_ok=True)
    return FolderWatcher(FolderSource(type="folder", path=str(folder), poll_s=0.05, settle_s=0.0, after="move"))


def test_numbered_names_in_done_are_remembered_for_the_newest_names_only(tmp_path):
    """Each name met again in done/ (a reworked serial, a camera's counter restarted) was remembered for good: one entry a
    part for weeks. Now the most recently numbered NUMBERED_KEPT; a name forgotten is still given a free number."""
    w = watcher(tmp_path / "in")
    done = w._subfolder("done")
    hot = "camera.png"  # a camera that writes every part under one name stays remembered through the churn
    for i in range(NUMBERED_KEPT * 3):
        name = f"SN{i:06d}.png"
        (done / name).write_bytes(b"earlier part")
        assert w._free_name(done, name) == done / f"SN{i:06d}-2.png"
        (done / hot if i == 0 else w._free_name(done, hot)).write_bytes(b"part")
    assert len(w._numbered) <= NUMBERED_KEPT
    assert w._numbered[done / hot] == NUMBERED_KEPT * 3
    # a forgotten name: found by trying, never a name already taken
    (done / "SN000000-2.png").write_bytes(b"second")
    assert done / "SN000000.png" not in w._numbered
    assert w._free_name(done, "SN000000.png") == done / "SN000000-3.png"


def test_subfolders_said_are_forgotten_once_gone_and_said_again_if_they_come_back(tmp_path, caplog):
    """A camera's folder a lot inside the watched folder is said once; the line moves each away, and every name stayed in
    memory for good."""
    folder = tmp_path / "in"
    w = watcher(folder)
    caplog.set_level(logging.WARNING, logger="inspector.sources")
    for i in range(500):
        lot = folder / f"lot{i}"
        lot.mkdir()
        for _ in range(2):  # two polls: said once
            with os.scandir(folder) as listing:
                w._say_subfolders(list(listing))
        lot.rmdir()
    with os.scandir(folder) as listing:
        w._say_subfolders(list(listing))
    assert w._said_folders == set()
    assert sum("lot7 is a folder" in r.getMessage() for r in caplog.records) == 1
    (folder / "lot7").mkdir()
    with os.scandir(folder) as listing:
        w._say_subfolders(list(listing))
    assert sum("lot7 is a folder" in r.getMessage() for r in caplog.records) == 2


def test_a_publish_paho_answers_before_it_returns_leaves_no_topic_behind(caplog):
    """paho answers a QoS 0 publish as its own thread writes it, which may come before `publish()` returns the packet id:
    the topic noted after stayed for good, 4 in 10 of Sparkplug's DDATA in a soak, one a part. Driven here in that order,
    and in the usual one, where a refusal still names its topic."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    from inspector.config import MqttSection
    from inspector.mqtt import MqttClient

    client = MqttClient(MqttSection(prefix="t/longrun"), "longrun-test", persistent=False)
    real, mids = client._client.publish, iter(range(1, 10**6))

    class Info:
        rc = 0

        def __init__(self, mid: int) -> None:
            self.mid = mid

    def answered_first(topic, payload, qos=0, retain=False, properties=None):
        info = Info(next(mids) % 65535 + 1)
        client._published(None, None, info.mid, ReasonCode(PacketTypes.PUBACK), None)  # paho's thread was quicker
        return info

    client._client.publish = answered_first
    try:
        for _ in range(5000):
            client.publish("spBv1.0/g/DDATA/n/d", b"x", qos=0)
    finally:
        client._client.publish = real
    assert len(client._topic_of) == 0
    assert not client._answered_early

    answers: list[int] = []

    def answered_later(topic, payload, qos=0, retain=False, properties=None):
        info = Info(next(mids) % 65535 + 1)
        answers.append(info.mid)
        return info

    client._client.publish = answered_later
    try:
        for _ in range(3):
            client.publish("t/longrun/result", b"x", qos=1)
    finally:
        client._client.publish = real
    assert set(client._topic_of.values()) == {"t/longrun/result"}
    client._published(None, None, answers[0], ReasonCode(PacketTypes.PUBACK, "Not authorized"), None)
    assert client.refused.get_nowait()[0] == answers[0]
    assert "refused a publish on t/longrun/result (Not authorized)" in caplog.text
    for mid in answers[1:]:
        client._published(None, None, mid, ReasonCode(PacketTypes.PUBACK), None)
    assert client._topic_of == {} and client._answered_early == set()
    client._client._reset_sockets()


def test_a_part_refused_after_its_move_is_found_in_done_without_listing_done(tmp_path, monkeypatch):
    """A watched file accepted, moved to done/, then not inspected moves on to rejected/: it was found by a listing of
    done/, which weeks of parts there (never pruned) made a second or more for each, on the sink's thread. Now from where
    it was moved; a file no longer remembered is still found by the listing."""
    import hashlib

    import inspector.sources as sources

    folder = tmp_path / "in"
    w = watcher(folder)

    def moved_and_refused(name: str, body: bytes) -> None:
        path = folder / name
        path.write_bytes(body)
        st = path.stat()
        read = sources._Read(sources._key(st), hashlib.sha256(body).hexdigest(), False, st.st_ctime_ns)
        w._finish(path, True, read)
        w._refused(path, read)

    (folder / "done").mkdir()
    (folder / "done" / "A1.png").write_bytes(b"an earlier part of that name")
    listed: list[str] = []
    real = sources._named_like
    monkeypatch.setattr(sources, "_named_like", lambda done, name: listed.append(name) or real(done, name))
    moved_and_refused("A1.png", b"the refused part")
    assert listed == []
    assert (folder / "rejected" / "A1.png").read_bytes() == b"the refused part"
    assert (folder / "done" / "A1.png").read_bytes() == b"an earlier part of that name"
    for i in range(sources.MOVED_KEPT + 10):  # remembered for the newest only
        path = folder / f"P{i}.png"
        path.write_bytes(b"p")
        st = path.stat()
        w._finish(path, True, sources._Read(sources._key(st), "d", False, st.st_ctime_ns))
    assert len(w._moved) == sources.MOVED_KEPT
    w._moved.clear()  # forgotten: still found
    path = folder / "B2.png"
    path.write_bytes(b"b")
    st = path.stat()
    read = sources._Read(sources._key(st), hashlib.sha256(b"b").hexdigest(), False, st.st_ctime_ns)
    w._finish(path, True, read)
    w._moved.clear()
    w._refused(path, read)
    assert listed == ["B2.png"] and (folder / "rejected" / "B2.png").exists()
