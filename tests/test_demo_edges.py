"""`inspector demo` at its edges: its broker on a busy port, signals half way, a second run into the same --out, the report's config."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inspector.demo import broker as demo_broker
from model.errors import InspectorError


@pytest.fixture
def mosquitto() -> str:
    binary = demo_broker.find_mosquitto()
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    return binary


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another program listens on (and never answers MQTT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_port_taken_before_mosquitto_binds_is_given_up_for_another(mosquitto, busy_port, tmp_path, monkeypatch):
    """free_port() -> mosquitto's bind is a race; a listener that took the port passed the connect-only check, mosquitto
    exited, and the station then waited on a port where no broker was (120 s + 10 s a part) before it failed."""
    real, ports = demo_broker.free_port, [busy_port]
    monkeypatch.setattr(demo_broker, "free_port", lambda: ports.pop() if ports else real())
    broker = demo_broker.start_broker(mosquitto, tmp_path)
    try:
        assert broker.port != busy_port
        assert broker.proc.poll() is None and demo_broker.speaks_mqtt(broker.port)
    finally:
        broker.stop()


def test_ports_taken_every_time_end_in_one_line(mosquitto, busy_port, tmp_path, monkeypatch):
    monkeypatch.setattr(demo_broker, "free_port", lambda: busy_port)
    with pytest.raises(InspectorError) as err:
        demo_broker.start_broker(mosquitto, tmp_path, tries=2)
    msg = str(err.value)
    assert "\n" not in msg and str(busy_port) in msg and "--no-mqtt" in msg


_HALFWAY = """
import sys, time
import inspector.demo.run as run
import inspector.demo.station as station
run.cli = lambda argv, say: say("$ inspector " + " ".join(argv) + "  (skipped)")
def serve(*args, **kwargs):
    print("SERVING", flush=True)
    time.sleep(120)
station.serve = serve
from inspector.cli import main
sys.exit(main(["demo", "--quick", "--out", sys.argv[1]]))
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGKILL"])
def test_a_signal_half_way_stops_the_broker(mosquitto, tmp_path, sig):
    """`kill PID` (or a closed terminal) half way ended Python at once: its mosquitto ran on, its port bound. `kill -9`,
    which Python cannot catch, left it running too (the parent-death signal stops it now)."""
    if sig == "SIGKILL" and not (shutil.which("setpriv") and sys.platform == "linux"):
        pytest.skip("needs util-linux's setpriv (Linux)")
    pytest.importorskip("skimage")
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc")
    out = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-c", _HALFWAY, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    pid = None
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if m := re.search(r"started mosquitto \(pid (\d+)\)", line):
                pid = int(m.group(1))
            if line.startswith("SERVING"):
                break
        assert pid is not None, "".join(lines) + proc.stderr.read()
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=60)
        if sig == "SIGKILL":  # nothing of Python's runs: the broker is told by the kernel, and exits on its own
            assert proc.returncode == -signal.SIGKILL
            end = time.monotonic() + 30  # a bound, not a timing: mosquitto's SIGTERM shutdown on a loaded CI machine
            while _alive(pid) and time.monotonic() < end:
                time.sleep(0.05)
        else:
            assert proc.returncode == 130, err
            assert err.strip().splitlines()[-1].startswith(f"interrupted: {out} holds a partial demo")
        assert not _alive(pid)
    finally:
        proc.kill()
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory) -> dict:
    """One reduced demo run without a broker: its folder, text and summary."""
    pytest.importorskip("skimage", reason="the demo's texture ships in scikit-image")
    import contextlib
    import io
    import json

    from inspector.cli import main

    out = tmp_path_factory.mktemp("demo_edges") / "QA demo"  # a space, as in a folder a person names
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["demo", "--quick", "--no-mqtt", "--out", str(out)])
    assert rc == 0, buf.getvalue()
    return {"out": out, "text": buf.getvalue(), "summary": json.loads((out / "summary.json").read_text())}


@pytest.mark.slow
def test_the_shift_report_shows_the_config_the_station_ran(quick_demo):
    """The report's configuration was a second station_config(): another client_id, and mqtt.port 0 without a broker."""
    import html

    import yaml

    ran = yaml.safe_load((quick_demo["out"] / "station.yaml").read_text())
    page = html.unescape(Path(quick_demo["summary"]["artefacts"]["shift_html"]).read_text(encoding="utf-8"))
    for key in ("client_id", "port"):
        assert f'<th scope="row" class="mono">mqtt.{key}</th><td class="mono">{ran["mqtt"][key]}</td>' in page


def _start_halfway(out: Path) -> subprocess.Popen:
    """A demo into `out` held in its serving step (fit and export skipped) until signalled."""
    proc = subprocess.Popen([sys.executable, "-c", _HALFWAY, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    for line in proc.stdout:
        if line.startswith("SERVING"):
            return proc
    proc.kill()
    raise AssertionError(proc.stderr.read())


def test_a_second_demo_into_the_same_out_is_refused_while_the_first_runs(tmp_path, capsys):
    """It emptied the first one's folder under it (model, store and video gone half way)."""
    pytest.importorskip("skimage")
    from inspector.cli import main
    from tests.cli import assert_one_line_error

    out = tmp_path / "demo"
    first = _start_halfway(out)
    try:
        labels = out / "data" / "line" / "labels.json"
        assert labels.is_file()
        assert_one_line_error(main(["demo", "--quick", "--no-mqtt", "--out", str(out)]), capsys.readouterr().err,
                              str(out), "another `inspector demo` is writing there")
        assert labels.is_file()
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)


def test_a_station_serving_from_the_folder_is_not_emptied_under_it(tmp_path):
    from inspector.demo.run import MARKER, prepare_out
    from inspector.store import LOCK_FILE
    from model.folders import hold_lock_file

    (tmp_path / MARKER).write_text("")
    (tmp_path / "station").mkdir()
    (tmp_path / "station" / "inspections.sqlite").write_bytes(b"x")
    fd = hold_lock_file(tmp_path / "station" / LOCK_FILE, "busy")  # what `inspector serve --config <out>/station.yaml` holds
    try:
        with pytest.raises(InspectorError, match="a station is serving from"):
            prepare_out(tmp_path)
    finally:
        os.close(fd)
    assert (tmp_path / "station" / "inspections.sqlite").is_file()
    prepare_out(tmp_path)  # stopped: emptied as before
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER]


def test_emptying_never_removes_the_marker_first(tmp_path, monkeypatch):
    """Cut short after the marker went (Ctrl-C, a file it could not remove), the next run refused the half-emptied folder
    as one 'the demo did not write'."""
    from inspector.demo import run

    (tmp_path / run.MARKER).write_text("")
    for i in range(5):
        (tmp_path / f"f{i}.png").write_bytes(b"x")
    (tmp_path / "old").mkdir()

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(run.shutil, "rmtree", refuse)
    listed = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: iter(sorted(listed(self))))  # the marker ('.inspector-demo') first
    with pytest.raises(PermissionError):
        run.prepare_out(tmp_path)
    assert (tmp_path / run.MARKER).is_file()
    monkeypatch.undo()
    run.prepare_out(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [run.MARKER]


@pytest.mark.slow
def test_a_broker_that_exits_half_way_ends_the_demo_in_one_line(quick_demo, mosquitto, tmp_path, monkeypatch, capsys):
    """The stand-in PLC waited out its whole deadline (2 min + 10 s a part: half an hour for the full demo) on `parts 0/160`."""
    import shutil

    from inspector.cli import main
    from inspector.demo import run, station
    from tests.cli import assert_one_line_error

    made = quick_demo["out"] / "model"

    def fit_or_export(argv, say):  # the fixture's station: the same seed makes the same parts
        name = "tiles.ckpt" if argv[0] == "fit" else "onnx"
        shutil.copytree(made / name, Path(argv[argv.index("--out") + 1]))

    started = []

    def start_broker(*args, **kwargs):
        started.append(real_start(*args, **kwargs))
        return started[-1]

    def plc(*args, **kwargs):
        started[0].proc.kill()
        started[0].proc.wait()
        return real_plc(*args, **kwargs)

    real_start, real_plc = demo_broker.start_broker, station._plc
    monkeypatch.setattr(run, "cli", fit_or_export)
    monkeypatch.setattr(demo_broker, "start_broker", start_broker)
    monkeypatch.setattr(station, "_plc", plc)
    assert_one_line_error(main(["demo", "--quick", "--out", str(tmp_path / "demo")]), capsys.readouterr().err,
                          "mosquitto exited half way", "--no-mqtt")


def test_the_echoed_commands_paste_back_with_a_space_in_out(tmp_path):
    """'the very commands a user types' were joined with spaces: an --out like '~/QA demo' pasted back as two arguments."""
    import shlex

    from inspector.demo.run import cli

    said: list[str] = []
    argv = ["export", str(tmp_path / "QA demo" / "model" / "tiles.ckpt"), "--format", "onnx", "--out", str(tmp_path / "QA demo" / "onnx")]
    with pytest.raises(InspectorError):  # no checkpoint there: it fails after the echo
        cli(argv, said.append)
    assert said[0].startswith("$ ") and shlex.split(said[0][2:]) == ["inspector", *argv]


@pytest.mark.slow
def test_the_station_file_names_its_own_path_quoted(quick_demo):
    import shlex

    first = (quick_demo["out"] / "station.yaml").read_text().splitlines()[0]
    assert shlex.split(first.split("run it yourself with: ", 1)[1]) == ["inspector", "serve", "--config", str(quick_demo["out"] / "station.yaml")]


def test_the_table_never_reads_a_perfect_auroc_that_was_not():
    """The full demo's 0.9998 (one good part scored above one defect) was printed as 1.000."""
    from inspector.demo.summary import DemoSummary, table

    def row(auroc):
        return next(line for line in table(DemoSummary(mode="m", image_auroc=auroc)).splitlines() if line.startswith("image AUROC"))

    assert row(0.9998).split()[-1] == "0.999"
    assert row(1.0).split()[-1] == "1.000" and row(0.9375).split()[-1] == "0.937" and row(None).split()[-1] == "n/a"


def test_an_interrupt_before_the_folder_is_touched_says_no_more(tmp_path, monkeypatch, capsys):
    from inspector.cli import main
    from inspector.demo import run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "holding_out", interrupted)
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_a_file_system_without_flock_still_takes_the_demo(tmp_path, monkeypatch):
    """The folder lock is a guard, not a requirement: a share whose flock fails (ENOLCK) must not refuse every run."""
    import errno
    import fcntl

    from inspector.demo import run

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    (tmp_path / run.MARKER).write_text("")
    (tmp_path / "station").mkdir()
    (tmp_path / "station" / ".serve.lock").write_text("")
    with run.holding_out(tmp_path) as out:
        assert sorted(p.name for p in out.iterdir()) == [run.MARKER]
