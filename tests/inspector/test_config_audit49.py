"""Station configs as a line engineer writes them by hand: defaults files, typos, secrets, quoting, odd YAML."""

from __future__ import annotations

from inspector.config import config_errors, deep_merge, load_config

BASE = """\
station:
  name: st1
model:
  path: /models/m.ckpt
source:
  type: camera
  device: 0
mqtt:
  prefix: factory/line1/st1
store:
  data_dir: /var/lib/inspector/st1
"""


def test_a_station_may_take_another_source_type_than_its_defaults(tmp_path):
    """The defaults' camera `device` was merged into the station's folder source and refused as an unknown key, said at the
    line of the defaults file (which is valid on its own)."""
    (tmp_path / "site.yaml").write_text(BASE)
    (tmp_path / "st.yaml").write_text("extends: site.yaml\nsource:\n  type: folder\n  path: /srv/in\n")
    cfg = load_config(tmp_path / "st.yaml")
    assert cfg.source.type == "folder" and cfg.source.path == "/srv/in"
    # the same type still merges key by key
    (tmp_path / "st2.yaml").write_text("extends: site.yaml\nsource:\n  type: camera\n  width: 640\n")
    cfg = load_config(tmp_path / "st2.yaml")
    assert (cfg.source.device, cfg.source.width) == (0, 640)
    assert deep_merge({"s": {"type": "a", "x": 1}}, {"s": {"type": "b"}}) == {"s": {"type": "b"}}
    # an error in the replacing source is said at the station's lines, not the defaults'
    (tmp_path / "site.yaml").write_text(BASE.replace("type: camera\n  device: 0", "type: video\n  path: /v.mp4"))
    (tmp_path / "st3.yaml").write_text("extends: site.yaml\nsource:\n  type: folder\n")
    _, errors = config_errors(tmp_path / "st3.yaml")
    assert errors == [f"{tmp_path / 'st3.yaml'}:2: source.path: Field required"], errors
