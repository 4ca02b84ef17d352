"""README.md's and docs/*.md's numbers: what the benchmarks print about how to read them."""

from __future__ import annotations

import os

from inspector.commands import bench_model


def _report(load: float | None, threads: int | None, cpus: int = 2) -> dict:
    machine = {"cpus": cpus, "platform": "Linux", "onnxruntime": "1.32.0", "python": "3.12", "load_average_1m": load}
    row = {"engine": "torch eager", "kind": "checkpoint", "device": "cpu", "path": "ck", "runtime": "torch-cpu", "file_mb": 23.8,
           "peak_rss_mb": None, "batches": {"1": {"median_ms": 441.0, "p99_ms": 2256.0, "images_per_s": 2.3, "speedup_vs_torch": 1.0}}}
    return {"machine": machine, "runs": 40, "warmup": 5, "threads": threads, "baseline": "torch eager cpu", "engines": [row],
            "note": bench_model.load_note(machine, threads)}


def test_bench_model_says_when_other_load_makes_its_speedups_read_high(capsys):
    # load 2.7 on 2 cores: the table read 10.4x for ONNX Runtime over torch, 1.7x with --threads 1 a minute later
    bench_model.print_table(_report(2.7, None))
    out = capsys.readouterr().out
    assert "note: load average 2.7 on 2 CPUs" in out and "--threads 1" in out


def test_bench_model_quiet_or_single_threaded_runs_carry_no_note(capsys):
    for load, threads in ((0.3, None), (2.7, 1), (None, None)):
        bench_model.print_table(_report(load, threads))
        assert "note:" not in capsys.readouterr().out


def test_bench_model_reads_the_load_as_it_starts(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (3.456, 2.0, 1.0))
    machine = bench_model.machine_info()
    assert machine["load_average_1m"] == 3.46 and machine["cpus"] == os.cpu_count()
