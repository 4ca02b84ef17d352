"""Line breaks in what is logged or printed, and long names: a sender's topic in the MQTT client's log lines,
a folder's notes from fit and the type labels, once printed raw; an overlay's name made from a long image name."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as paho
import pytest

from inspector.config import MqttSection
from inspector.mqtt import MqttClient
from tests.cli import cli

FORGED = "p/image/A\n2026-12-06 12:00:00,000 ERROR   inspector.daemon: forged\x1b[31m"


def _client(**mqtt) -> MqttClient:
    c = MqttClient(MqttSection(port=1, prefix="p", keepalive_s=30, **mqtt), "review54", subscriptions=["p/image/#"], manual_ack=True)
    c._client.ack = lambda mid, qos: None
    return c


def _arrive(c: MqttClient, topic: str, mid: int, dup: bool, response_topic: str | None = None) -> None:
    msg = paho.MQTTMessage(mid, topic.encode())
    msg.payload, msg.qos, msg.dup = b"\x89PNG", 1, dup
    if response_topic is not None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        msg.properties = Properties(PacketTypes.PUBLISH)
        msg.properties.ResponseTopic = response_topic
    c._message(c._client, None, msg)


def _logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "inspector.mqtt"]


def test_a_copy_on_a_topic_with_a_line_break_forges_no_log_line(caplog):
    """The intake's log escapes a topic's control characters (a sender names the `image/<serial>` topic, and a broker
    may pass a newline in it); the client's own line for a copy the broker sent again wrote it raw, a forged ERROR."""
    c = _client()
    try:
        with caplog.at_level(logging.INFO, logger="inspector.mqtt"):
            _arrive(c, FORGED, 7, dup=False)
            _arrive(c, FORGED, 7, dup=True)  # the broker's copy of the one being handled
        said = [m for m in _logged(caplog) if "again" in m]
        assert said and not any(ch in m for m in said for ch in "\n\x1b"), said
        assert "\\n" in said[0]  # still named, escaped
    finally:
        c._client._reset_sockets()


def test_a_response_topic_refused_on_a_topic_with_a_line_break_forges_no_log_line(caplog):
    c = _client(protocol="5")
    try:
        with caplog.at_level(logging.WARNING, logger="inspector.mqtt"):
            _arrive(c, FORGED, 8, dup=False, response_topic="other/answers")  # in no mqtt.response_topics
        said = [m for m in _logged(caplog) if "asks for its answer" in m]
        assert said and not any(ch in m for m in said for ch in "\n\x1b"), said
    finally:
        c._client._reset_sockets()


def _good_folder(root: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(root / f"{i}.png"), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    return root


@pytest.mark.skipif(os.name != "posix", reason="a file name holding a newline")
def test_fit_says_a_folder_note_naming_a_line_break_in_one_line(tmp_path, capsys):
    """`inspect` says a folder's notes one line each (a link's name or target may hold a newline); fit printed the same
    notes of its data folder raw: the second half of the line had no `note:` and read as output of its own."""
    data = _good_folder(tmp_path / "data", 3)
    os.symlink("gone\nerror: forged", data / "dead\n.png")
    # too few images, refused after the notes are said (options are refused before them), so that nothing is fitted
    rc, _, err = cli(capsys, "fit", data, "--out", tmp_path / "out")
    assert rc == 2, err
    notes = [line for line in err.splitlines() if "lead nowhere" in line]
    assert notes and notes[0].startswith("note: "), err
    assert all(line.startswith(("note: ", "error: ")) for line in err.splitlines() if line.strip()), err


@pytest.mark.skipif(os.name != "posix", reason="a file name holding a newline")
def test_fit_says_a_labels_note_naming_a_line_break_in_one_line(tmp_path, capsys):
    """The same of --labels' notes."""
    import shutil

    data = _good_folder(tmp_path / "data")
    labels = tmp_path / "labels"
    for k, kind in enumerate(("crack", "stain")):
        (labels / kind).mkdir(parents=True)
        for i in range(3 * k, 3 * k + 3):
            shutil.copyfile(data / f"{i}.png", labels / kind / f"{i}.png")
    os.symlink("gone\nerror: forged", labels / "crack" / "dead\n.png")
    # refused after the notes are said (the labelled images are training images), so that nothing is fitted
    rc, _, err = cli(capsys, "fit", data, "--out", tmp_path / "out", "--labels", labels)
    assert rc == 2, err
    notes = [line for line in err.splitlines() if "lead nowhere" in line]
    assert notes and notes[0].startswith("note: "), err
    assert all(line.startswith(("note: ", "error: ")) for line in err.splitlines() if line.strip()), err


def test_an_image_whose_name_leaves_no_room_for_overlay_png_still_gets_its_overlay(tmp_path, capsys, tiny_ckpt, tiny_data):
    """Overlay names are made from outside names too (the image files'): one of 240 bytes made `<name>_overlay.png`
    (and its temporary file) too long to write, and the overlays of every image after it were not written either."""
    import shutil

    part = sorted((tiny_data / "test/good").glob("*.png"))[0]
    folder = tmp_path / "parts"
    folder.mkdir()
    long_name = "a" * 236 + ".png"  # 240 bytes, a name any file system takes
    for name in (long_name, "b.png"):
        shutil.copy(part, folder / name)
    rc, _, err = cli(capsys, "inspect", tiny_ckpt, folder, "--overlays", tmp_path / "overlays")
    assert rc == 0, err
    written = sorted(p.name for p in (tmp_path / "overlays").iterdir())
    assert len(written) == 2 and "b_overlay.png" in written, written
    assert all(len(n.encode()) <= 255 - 20 for n in written), written  # room for a temporary file's suffix


def test_long_image_names_alike_but_for_their_end_keep_overlays_of_their_own(tmp_path):
    from inspector.commands.inspect import STEM_MAX, _overlay_names

    paths = [tmp_path / f"{'裂' * 80}{end}.png" for end in ("1", "2")] + [tmp_path / "short.png"]  # 241 bytes each
    names = _overlay_names(paths, str(tmp_path))
    assert len(set(names.values())) == 3 and names[paths[2]].name == "short_overlay.png"
    assert all(len(os.fsencode(n.name)) <= STEM_MAX + len("_overlay.png") for n in names.values()), names


def test_a_file_named_with_all_255_bytes_is_written_whole(tmp_path):
    """replace_files wrote through `<name>.<pid>.tmp`, which a legal name of 244-255 bytes had no room for: "File name
    too long" for a file that could be written (`config example --out`, a report of a long id)."""
    from model.folders import replace_files

    target = tmp_path / ("a" * 251 + ".png")
    target.write_bytes(b"old")
    replace_files({target: b"new"})
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_eval_says_a_note_naming_a_line_break_in_one_line(capsys, monkeypatch, tiny_ckpt, tiny_data):
    """eval printed its notes raw, as fit did: a file name holding a line break split one, its second half read as
    another line (`error: forged`)."""
    import model.evaluate as evaluate

    monkeypatch.setattr(evaluate, "resolution_notes", lambda *_: ["masks of x\nerror: forged.png are empty"])
    code, out, _ = cli(capsys, "eval", tiny_ckpt, tiny_data)
    assert code == 0 and not any(line.startswith("error") for line in out.splitlines())
    assert any(line.startswith("  note: masks of x") and "forged" in line for line in out.splitlines()), out


def test_inspect_says_each_verdict_in_one_line_when_an_image_name_holds_a_line_break(tmp_path, capsys, tiny_ckpt, tiny_data):
    """An image named `new\\nline.png` (a name pasted from a spreadsheet) split its verdict and its overlay's line in two:
    a script reading `inspect`'s lines (grep ^FAIL) got the name cut, and a line that was no verdict."""
    import shutil

    part = sorted((tiny_data / "test/good").glob("*.png"))[0]
    folder = tmp_path / "parts"
    folder.mkdir()
    shutil.copy(part, folder / "new\nline.png")
    rc, out, err = cli(capsys, "inspect", tiny_ckpt, folder, "--overlays", tmp_path / "overlays")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("PASS ") and lines[0].endswith("new\\nline.png"), out
    assert lines[1].strip().startswith("overlay ") and lines[1].endswith("new\\nline_overlay.png"), out
    assert len(lines) == 2, out
