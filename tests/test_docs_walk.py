"""README.md, docs/ and configs/ as a new user walks them: the shipped pieces fit together."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml
from paho.mqtt.client import topic_matches_sub

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
INPUTS, OUTPUTS = ("trigger", "image", "image/SN1", "command"), ("result", "status", "error", "report")


def _acl_patterns(access: str) -> list[str]:
    """The ACL's `pattern` lines that grant `access` (read or write), as mosquitto reads them."""
    lines = (line.split() for line in (CONFIGS / "mosquitto.acl").read_text().splitlines())
    return [words[-1] for words in lines if len(words) == 3 and words[0] == "pattern" and words[1] in (access, "readwrite")]


def _with_broker_user() -> list[str]:
    """The station examples that log in to the broker (the others are for a broker without the ACL)."""
    return sorted(p.name for p in CONFIGS.glob("station-*.yaml") if yaml.safe_load(p.read_text())["mqtt"].get("username"))


def test_the_line_examples_log_in_as_a_broker_user():
    assert {"station-camera.yaml", "station-stream.yaml"} <= set(_with_broker_user())


@pytest.mark.parametrize("example", _with_broker_user())
def test_a_station_example_with_a_broker_user_fits_the_shipped_acl(example):
    # the camera example (user station3) had prefix factory/line1/station3, the ACL only plant/%u/...: with both, as
    # the README pairs them, the broker dropped every trigger to the station and every result from it
    mqtt = yaml.safe_load((CONFIGS / example).read_text())["mqtt"]
    user, prefix = mqtt["username"], mqtt["prefix"]
    for access, topics in (("read", INPUTS), ("write", OUTPUTS)):
        allowed = [p.replace("%u", user) for p in _acl_patterns(access)]
        for topic in topics:
            assert any(topic_matches_sub(p, f"{prefix}/{topic}") for p in allowed), (example, access, f"{prefix}/{topic}")


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-action of `parser` (`config schema`, `bench report`, ...), as words after `inspector`."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [(*path, name), *_commands(sub, (*path, name))]
    return found


def test_every_command_is_named_where_a_user_reads():
    # `inspector config schema`, where every key of a station config is described (and to which config validate's
    # "unknown key" points), was named in neither the README nor docs/
    from inspector.cli import build_parser

    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    missing = [" ".join(c) for c in _commands(build_parser()) if f"inspector {' '.join(c)}" not in text]
    assert not missing, missing


def test_the_unit_waits_out_the_default_drain_and_the_stop_after_it():
    """TimeoutStopSec=45 was under the default drain (30 s) and the stop's bounded waits after it (29 s): systemd's
    SIGKILL came first, and the station's `offline` came from its will."""
    import re

    from inspector.config import DaemonSection
    from inspector.daemon import CLOSE_WAIT_S

    unit = (ROOT / "configs" / "inspector.service").read_text()
    stop_s = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))
    joins_s = 5 + 5 + 5 + 2 + 2  # inference, sink, report hooks, Sparkplug, MQTT (daemon._stop_parts)
    assert stop_s > DaemonSection().drain_timeout_s + joins_s + CLOSE_WAIT_S


def test_the_video_example_is_described_as_it_is_set():
    """`config example` called the video station "every frame a part", whose config inspects two frames a second."""
    from inspector.examples import EXAMPLES

    file, said = EXAMPLES["video"]
    interval = yaml.safe_load((CONFIGS / file).read_text())["source"]["interval_s"]
    assert "every frame" not in said and ("two a second" in said) == (interval == 0.5)
