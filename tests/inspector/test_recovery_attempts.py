"""The station's recovery and start checks: a recovery attempt is counted as its batch starts (counted as jobs were
queued, three starts stopped by a crash before a backlog ran gave up parts that had never run, saying "it stopped the
daemon each time"); `config validate --here` opens the store as serve does."""

from __future__ import annotations

import queue as q

from inspector.config import StationConfig
from inspector.health import Metrics
from inspector.intake import MAX_ATTEMPTS, Intake
from inspector.mqtt import Topics
from inspector.pipeline import Inference
from inspector.store import Store
from tests.inspector.conftest import png
from tests.synthetic import good_image


def _start(root, sent: list) -> tuple[Store, q.Queue, Intake]:
    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p"}, "store": {"data_dir": str(root)}})
    store, jobs = Store(root), q.Queue(8)
    return store, jobs, Intake(cfg, store, jobs, Metrics(), Topics("p"), publish=lambda topic, body, reply=None: sent.append(topic),
                               republish=lambda r, c: None)


def test_starts_stopped_before_a_backlog_ran_give_none_of_it_up(tmp_path):
    first, _, _ = _start(tmp_path / "data", [])
    for i in range(5):
        first.accept(f"job-{i}", {"serial": str(i)}, png(good_image(i)))
    first.close()
    sent: list = []
    for _ in range(MAX_ATTEMPTS + 1):  # each start recovers the backlog into its queue and is killed before a batch
        store, _, intake = _start(tmp_path / "data", sent)
        assert intake.recover() == 5
        store.close()
    assert sent == [] and [a for _, _, a in Store(tmp_path / "data").pending()] == [0] * 5


def test_a_batch_counts_an_attempt_for_its_recovered_jobs_alone(tmp_path, tiny_inspector):
    store, jobs, intake = _start(tmp_path / "data", [])
    for i in range(3):
        store.accept(f"job-{i}", {"serial": str(i)}, png(good_image(i)))
    assert intake.recover() == 3
    results: q.Queue = q.Queue(8)
    inference = Inference(tiny_inspector, jobs, results, 2, Metrics(), store)
    inference.step()  # a batch of two; the third waits
    assert [(i, a) for i, _, a in store.pending()] == [("job-0", 1), ("job-1", 1), ("job-2", 0)]
    assert results.qsize() == 2
    for _ in range(MAX_ATTEMPTS - 1):  # the batch stopped the daemon each time: given up at the start after the last
        store.count_attempts(["job-0"])
    sent: list = []
    store.close()
    _, _, intake = _start(tmp_path / "data", sent)
    assert intake.recover() == 2 and sent == ["p/error"]


def test_validate_here_refuses_a_store_serve_would_refuse(tmp_path, tiny_ckpt, capsys):
    """`config validate --here` said the store checked of one a newer inspector wrote (or a damaged one), which serve refused."""
    import json
    import sqlite3

    from inspector.cli import main
    from inspector.store import DB_NAME

    (tmp_path / "in").mkdir()
    config = tmp_path / "st.yaml"
    config.write_text(json.dumps({"station": {"name": "st1"}, "model": {"path": str(tiny_ckpt)}, "source": {"type": "folder", "path": str(tmp_path / "in")},
                                  "mqtt": {"prefix": "f/st1"}, "store": {"data_dir": str(tmp_path / "data")}, "http": {"port": 0}}))
    Store(tmp_path / "data").close()
    assert main(["config", "validate", "--here", str(config)]) == 0
    capsys.readouterr()
    db = sqlite3.connect(tmp_path / "data" / DB_NAME)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    before = (tmp_path / "data" / DB_NAME).read_bytes()
    assert main(["config", "validate", "--here", "--json", str(config)]) == 1
    errors = json.loads(capsys.readouterr().out)["errors"]
    assert len(errors) == 1 and "schema version 99 is newer than this inspector" in errors[0], errors
    assert (tmp_path / "data" / DB_NAME).read_bytes() == before
    (tmp_path / "data" / DB_NAME).write_bytes(b"not a database" * 100)
    assert main(["config", "validate", "--here", "--json", str(config)]) == 1
    assert "not a usable SQLite database" in json.loads(capsys.readouterr().out)["errors"][0]


def test_a_job_that_was_in_a_batch_when_the_daemon_died_runs_alone(tmp_path):
    """Batched, the job that kills the process took the others' recovery attempts with it at every start, and all were given
    up together; once it has an attempt counted, it runs alone, so the rest are inspected at the next start."""

    class Recording:
        def __init__(self) -> None:
            self.batches: list[list[str]] = []

        def inspect_batch(self, images, serials, sources, ids):
            self.batches.append(list(ids))
            return [object() for _ in ids]

    store, jobs, intake = _start(tmp_path / "data", [])
    for i in range(4):
        store.accept(f"job-{i}", {"serial": str(i)}, png(good_image(i)))
    store.count_attempts(["job-1"])  # two of the batch the daemon died in
    store.count_attempts(["job-3"])
    assert intake.recover() == 4
    engine, results = Recording(), q.Queue(8)
    Inference(engine, jobs, results, 8, Metrics(), store).step()
    assert engine.batches == [["job-0", "job-2"], ["job-1"], ["job-3"]]
    assert [(i, a) for i, _, a in store.pending()] == [("job-0", 1), ("job-1", 2), ("job-2", 1), ("job-3", 2)]
    assert results.qsize() == 4 and jobs.unfinished_tasks == 0
