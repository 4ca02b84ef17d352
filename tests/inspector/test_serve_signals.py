"""`inspector serve` as a line engineer runs it: signals, stores and names that a real station meets."""

from __future__ import annotations

import pytest
import yaml

from tests.inspector.conftest import serving, station_dict, wait_until

# a SIGHUP arriving while the station loads its model (`inspector reload` once /health answered, systemd's ExecReload,
# a `kill -HUP` by hand): sent from inside the start, so no timing decides whether it came early
EARLY_HUP = """
import os, signal, sys
from inspector.cli import main
from inspector.daemon import Daemon
start_rest = Daemon._start_rest
def hup_then_start(self, client_id):
    os.kill(os.getpid(), signal.SIGHUP)
    return start_rest(self, client_id)
Daemon._start_rest = hup_then_start
sys.exit(main(["serve", "--config", sys.argv[1]]))
"""


@pytest.mark.slow
def test_a_sighup_while_the_station_starts_neither_kills_it_nor_is_lost(tmp_path, broker, listen, tiny_ckpt):
    """SIGHUP's default action ended the process: the handler was set only once the start was over."""
    raw = station_dict(tmp_path, broker, tiny_ckpt)
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(raw))
    log = tmp_path / "daemon.log"
    lst = listen(broker.port, raw["mqtt"]["prefix"])
    with serving(["-c", EARLY_HUP, str(path)], log, lst):
        wait_until(lambda: "reloaded: model" in log.read_text(), 60, "the reload asked for during the start")
        assert "asked for while the station started" in log.read_text()


def test_a_station_renamed_over_its_store_is_told_what_the_new_name_leaves_out(station, tiny_inspector, caplog):
    """Renamed between runs over one store, the station's shift reports (by station.name) left out every part judged under
    the old name, and the broker's session of its old client id kept the inputs it held: nothing said so."""
    from pathlib import Path

    from inspector.store import Store
    from reports.sample import make_records
    from tests.inspector.conftest import running

    cfg = station(station={"name": "press-4"}, mqtt={"client_id": None})
    root = Path(cfg.store.data_dir)
    store = Store(root, exclusive=True)
    for r in make_records(3, root=root, hours=1.0, image_size=48, station="press-3"):
        store.add(r)
    store.close()
    with caplog.at_level("WARNING", logger="inspector.daemon"), running(cfg, tiny_inspector):
        pass
    said = [r.getMessage() for r in caplog.records if "judged as station" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]
    assert "'press-3'" in said[0] and "--station press-4" in said[0] and "mqtt.client_id: inspector-press-3" in said[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="inspector.daemon"), running(station(station={"name": "press-3"}), tiny_inspector):
        pass
    assert not [r for r in caplog.records if "judged as station" in r.getMessage()]
