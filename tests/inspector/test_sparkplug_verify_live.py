"""A running station's less-travelled parts: Sparkplug B, the verification images, the live view, the outbox."""

from __future__ import annotations

import logging
import re
import threading
import time

import cv2
import numpy as np
import pytest

from inspector.config import StationConfig
from inspector.live import LiveView
from inspector.sparkplug import decode_payload
from inspector.verification import verify
from model.errors import InspectorError
from model.quality import quality_causes, quality_stats
from tests.inspector.conftest import born_node, wait_until


def test_sparkplug_counts_every_defect_region_not_only_those_the_record_lists(broker, listen):
    """A part with 35 regions: the record lists the 20 most severe, and DDATA's `defects` read 20."""
    lst = listen(broker.port, "x", extra_topics=("spBv1.0/#",))
    with born_node(broker.port, lst, "spb-a51") as node:
        node.publish_result({"inspection_id": "many", "verdict": "FAIL", "score": 9.0, "threshold": 1.0, "defects": [{}] * 20,
                             "defects_found": 35})
        node.publish_result({"inspection_id": "old", "verdict": "FAIL", "score": 9.0, "threshold": 1.0, "defects": [{}] * 3})  # no count
        data = wait_until(lambda: len(lst.on("spBv1.0/G/DDATA/N/D")) == 2 and lst.on("spBv1.0/G/DDATA/N/D"), 10, "DDATA")
    assert [decode_payload(p)["metrics"]["defects"] for p, _ in data] == [35, 3]


def test_a_verification_image_unlike_the_training_images_is_named_with_its_warning(tiny_inspector, tiny_data, tmp_path, caplog):
    """A black frame listed as a good part: the error blamed the model or its threshold, with nothing on why; listed as
    a defect, it FAILs as every black frame does, and the check passed silently though it proved nothing."""
    black = tmp_path / "black.png"
    cv2.imwrite(str(black), np.zeros((96, 96, 3), np.uint8))
    good = str(tiny_data / "test" / "good" / "000.png")
    with pytest.raises(InspectorError, match=rf'model.verify_good {black} FAIL at score .*; it warns: "image is much darker'):
        verify(tiny_inspector, [str(black)], [])
    with caplog.at_level(logging.WARNING, logger="inspector.verification"):
        assert verify(tiny_inspector, [good], [str(black)]) == {"good": 1, "defect": 1}
    said = [r.getMessage() for r in caplog.records if r.name == "inspector.verification"]
    assert len(said) == 1 and said[0].startswith(f'model.verify_defect {black} FAILs as it should; it warns: "image is much darker')
    assert "prove little about the model" in said[0]


def test_a_resealed_quality_range_that_is_not_two_numbers_leaves_that_statistic_unjudged():
    """A hand-edited, resealed manifest's `image_quality`: a range given as one number raised TypeError at every
    inspection (a traceback at `inspector inspect`); as a missing one is, it is not judged, and the others are."""
    frames = np.stack([np.zeros((3, 64, 64), np.float32), np.full((3, 64, 64), 0.5, np.float32)])
    black, grey = quality_stats(frames)
    for bad in (0.3, [None, 0.5], "0.3", [0.1, 0.2, 0.3], [True, 1], [float("nan"), 0.5]):
        summary = {"brightness": bad, "contrast": [0.1, 0.3], "white": [0.0, 0.01], "sharpness": [0.5, 0.7]}
        assert quality_causes(grey, summary) == ["blank"]  # judged on its contrast, still
    assert quality_causes(black, {"brightness": [0.4, 0.6], "contrast": 0.2}) == ["dark"]
    assert quality_causes(black, ["brightness", "contrast"]) == [] and quality_causes(black, {"brightness": {"lo": 0.4}}) == []


def test_screens_asking_for_the_live_view_at_once_draw_a_new_parts_overlay_once(tiny_inspector, tiny_data, tmp_path, monkeypatch):
    """Each screen at the line drew the new part's overlay again (0.7 s of CPU for a 20 MP image, each, beside the
    inference); one draws it, the others wait for it and show the same."""
    cfg = StationConfig.model_validate({"station": {"name": "s1"}, "model": {"path": "m.ckpt"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "a/b"}, "store": {"data_dir": str(tmp_path / "data")}})
    result = tiny_inspector.inspect(str(tiny_data / "test" / "blob" / "000.png"))
    rgb = cv2.cvtColor(cv2.imread(str(tiny_data / "test" / "blob" / "000.png")), cv2.COLOR_BGR2RGB)
    drawn, real = [], type(result).overlay

    def slow(self, image):
        drawn.append(self.inspection_id)
        time.sleep(0.5)  # a large image's
        return real(self, image)

    monkeypatch.setattr(type(result), "overlay", slow)
    live = LiveView(cfg, lambda: {"station": "s1", "status": "ok", "verdicts": {"FAIL": 1}})
    live.add(rgb, result, result.to_record())
    start, pages = threading.Barrier(3), []

    def view():
        start.wait()
        pages.append(live.page())

    screens = [threading.Thread(target=view) for _ in range(3)]
    for t in screens:
        t.start()
    for t in screens:
        t.join(30)
    overlays = {re.search(rb'src="(data:image/jpeg;base64,[^"]+)"', page).group(1) for page in pages}
    assert drawn == [result.inspection_id] and len(pages) == 3 and len(overlays) == 1


def test_a_verification_image_given_as_a_folder_is_named_a_folder(tmp_path):
    """model.verify_good naming a folder was refused as 'no such file', and the user looked for a folder that is there."""
    import pytest

    from inspector.config import ModelSection
    from inspector.daemon import check_verification_files
    from model.errors import InspectorError

    with pytest.raises(InspectorError, match=f"^model.verify_good: {tmp_path}: a folder, not an image file; give images"):
        check_verification_files(ModelSection.model_construct(verify_good=[str(tmp_path)], verify_defect=[]))
    with pytest.raises(InspectorError, match="no such file"):
        check_verification_files(ModelSection.model_construct(verify_good=[], verify_defect=[str(tmp_path / "gone.png")]))


def test_the_live_view_keeps_the_last_failed_part_on_screen_until_the_next(tiny_inspector, tiny_data, tmp_path):
    """The page showed the newest part alone: on a line faster than its 2 s refresh a FAIL's overlay was gone before
    anyone at the line saw it."""
    from dataclasses import replace

    cfg = StationConfig.model_validate({"station": {"name": "s1"}, "model": {"path": "m.ckpt"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "a/b"}, "store": {"data_dir": str(tmp_path / "data")}})
    live = LiveView(cfg, lambda: {"station": "s1", "status": "ok"})
    bad, good = (tiny_data / "test" / d / "000.png" for d in ("blob", "good"))
    rgbs = {p: cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in (bad, good)}
    results = {p: tiny_inspector.inspect(str(p)) for p in (bad, good)}
    assert (results[bad].verdict, results[good].verdict) == ("FAIL", "PASS")

    def add(path, ident, serial):
        r = replace(results[path], inspection_id=ident, serial=serial)
        live.add(rgbs[path], r, r.to_record())
        return live.page().decode()

    page = add(bad, "f1", "BAD-1")
    assert 'id="last-fail"' not in page  # the newest is the failed part: shown once
    for i in range(3):
        page = add(good, f"p{i}", f"GOOD-{i}")
    assert '<td id="fail-serial">BAD-1</td>' in page and '<td id="serial">GOOD-2</td>' in page
    assert len(re.findall(r'src="data:image/jpeg;base64,', page)) == 2 and len(live._drawn) == 2  # the two shown, no more
    page = add(bad, "f2", "BAD-2")
    assert 'id="last-fail"' not in page and '<td id="serial">BAD-2</td>' in page
