"""`inspector bench serve` against a daemon through a real broker: every input answered, latencies ordered; bad bench arguments."""

from __future__ import annotations

import json

import pytest
import yaml

from inspector.cli import main
from inspector.commands.bench_serve import bench_serve, percentile
from tests.cli import assert_one_line_error, cli
from tests.inspector.conftest import running, station_dict


def test_percentile():
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5 and percentile(list(map(float, range(101))), 99) == 99.0


@pytest.mark.parametrize("mode", ["image", "base64"])
def test_bench_serve_measures_a_running_daemon(station, tiny_inspector, mode):
    cfg = station()
    with running(cfg, tiny_inspector) as d:
        out = bench_serve(cfg, rate=40.0, count=30, warmup=2, mode=mode)
        assert d.store.count() == 32  # warm-up + timed, each inspected once
        run = out["stored_as"].removesuffix("*")  # as the note tells the user
        assert all(r["inspection_id"].startswith(run) for r in d.store.iter_records("2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z"))
    assert (out["sent"], out["results"], out["errors"], out["lost"], out["mode"]) == (30, 30, 0, 0, mode)
    lat = out["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] and out["frames_per_s"] > 0


def test_bench_serve_cli(tmp_path, broker, tiny_ckpt, tiny_inspector, capsys):
    from inspector.config import StationConfig

    raw = station_dict(tmp_path, broker, tiny_ckpt)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    with running(StationConfig.model_validate(raw), tiny_inspector):
        assert main(["bench", "serve", "--config", str(tmp_path / "s.yaml"), "--count", "10", "--rate", "50", "--warmup", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"] == 10 and out["latency_ms"]["p99"] >= out["latency_ms"]["p50"]
    assert out["engine_alone_ms"] > 0 and out["p50_vs_engine_alone"] == pytest.approx(out["latency_ms"]["p50"] / out["engine_alone_ms"], rel=0.02)
    # nothing listening on that prefix: a clear error, not a hang
    # and the daemon's model is on another machine: the baseline is skipped, the run still asks the broker
    raw["mqtt"]["prefix"] = "nobody/home"
    raw["model"]["path"] = str(tmp_path / "elsewhere.ckpt")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    assert main(["bench", "serve", "--config", str(tmp_path / "s.yaml"), "--count", "2", "--warmup", "0", "--timeout", "1"]) == 2
    err = capsys.readouterr().err
    assert "note: no baseline (model " in err and "no results within 1 s" in err


def test_bench_serve_without_its_broker_says_one_thing_and_stops(tmp_path, tiny_ckpt, capsys):
    """Nothing listening on the broker's port: "broker unreachable; retrying in the background, results are kept until
    it is back" was printed, then "error: bench serve: cannot reach the broker 127.0.0.1:P (stopped)", after the
    baseline had timed the model. A benchmark without its broker measures nothing: one line naming it and the fix."""
    import subprocess
    import sys

    from inspector.demo.broker import free_port

    port = free_port()  # nothing listens there
    raw = {"station": {"name": "st1"}, "model": {"path": str(tiny_ckpt)}, "source": {"type": "mqtt"},
           "mqtt": {"host": "127.0.0.1", "port": port, "prefix": "bench/nobody"}, "store": {"data_dir": str(tmp_path / "data")}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    argv = ["bench", "serve", "--config", str(tmp_path / "s.yaml"), "--count", "2", "--warmup", "0"]
    # in a process of its own, as a user runs it: the MQTT client's log lines reach stderr there (pytest takes them here)
    p = subprocess.run([sys.executable, "-m", "inspector", *argv], capture_output=True, text=True)
    needles = (f"bench serve: broker 127.0.0.1:{port}: cannot connect (Connection refused); start the broker (to try it: mosquitto -p {port} on this host;",
               "mqtt.host and mqtt.port")
    assert_one_line_error(p.returncode, p.stderr, *needles)
    assert "retrying" not in p.stderr and "baseline" not in p.stderr and p.stdout == ""
    rc, out, err = cli(capsys, *argv, "--no-baseline")
    assert_one_line_error(rc, err, *needles)


@pytest.mark.parametrize("argv, needle", [
    (["reprot", "--n", "5"], "bench reprot: no such benchmark; did you mean `inspector bench report`?"),  # "data 5: no such folder"
    (["serve", "--config", "c.yaml", "--rate", "nan"], "--rate: 'nan': give a number above 0"),  # accepted before
    (["serve", "--config", "c.yaml", "--timeout", "0"], "--timeout: '0': give a number above 0"),
    (["serve", "--config", "c.yaml", "--warmup", "-4"], "--warmup: '-4': give a whole number of at least 0"),
    (["model", "ck", "data", "--threads", "0"], "--threads: '0': give a whole number of at least 1"),
    (["model", "ck", "data", "--batches", ","], "--batches: ',': give comma-separated integers"),  # an empty table before
    (["model", "ck", "data", "--batches", "1,,8"], "--batches: '1,,8': give comma-separated integers"),  # taken as 1,8 before
    (["model", "ck", "data", "--batches", "8,1,8"], "--batches: '8,1,8': 8 is given twice; give each once"),  # two columns for three
    (["report", "--keep", "__file__"], "is a file; give a new or empty folder"),  # a traceback before
])
def test_bench_bad_arguments_are_one_line(capsys, argv, needle):
    rc, _, err = cli(capsys, "bench", *[__file__ if a == "__file__" else a for a in argv])
    assert_one_line_error(rc, err, needle)
