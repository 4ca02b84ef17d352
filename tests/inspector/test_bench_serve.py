"""`inspector bench serve` against a daemon through a real broker: every input answered, latencies ordered."""

from __future__ import annotations

import json

import pytest
import yaml

from inspector.cli import main
from inspector.commands.bench_serve import bench_serve, percentile
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
    # nothing listening on that prefix: a clear error, not a hang
    raw["mqtt"]["prefix"] = "nobody/home"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    assert main(["bench", "serve", "--config", str(tmp_path / "s.yaml"), "--count", "2", "--warmup", "0", "--timeout", "1"]) == 2
    assert "no results within 1 s" in capsys.readouterr().err
