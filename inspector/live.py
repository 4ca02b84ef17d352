"""The daemon's live view (GET / on its HTTP port): what the station saw last, for the people at the line.

It is held in memory, not read from the store: a part's overlay shows whether or not the store keeps images,
and the page costs the line nothing until someone opens it (the overlay is drawn once per part, on request).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from inspector.config import StationConfig
from inspector.result import InspectionResult

RECENT = 20  # parts in the page's table
OVERLAY_PX = 960  # longest side of the overlay on the page


class LiveView:
    def __init__(self, cfg: StationConfig, health: Callable[[], dict[str, Any]]) -> None:
        self.cfg, self._health = cfg, health
        self._lock = threading.Lock()
        self._latest: tuple[np.ndarray, InspectionResult] | None = None
        # the last FAIL, shown beside the latest part until the next: on a line faster than the page's refresh, a
        # failed part's overlay was gone before anyone saw it
        self._failed: tuple[np.ndarray, InspectionResult, dict[str, Any]] | None = None
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self._drawn: dict[str, str] = {}  # inspection_id -> overlay data URI, of the parts shown
        # one viewer draws a new part's overlay, the others wait for it: each screen at the line drew it again (0.7 s of
        # CPU for a 20 MP image, each, beside the inference)
        self._drawing = threading.Lock()

    def add(self, rgb: np.ndarray, result: InspectionResult, record: dict[str, Any]) -> None:
        """A stored result (the sink's thread): newest first."""
        with self._lock:
            self._latest = (rgb, result)
            if result.verdict == "FAIL":
                self._failed = (rgb, result, record)
            self._recent.appendleft(record)

    def _overlay(self, rgb: np.ndarray, result: InspectionResult) -> str:
        """The part's overlay as a data URI, drawn once for all viewers."""
        from reports.images import array_uri

        ident = result.inspection_id
        with self._lock:
            uri = self._drawn.get(ident)
        if uri is None:
            with self._drawing:
                with self._lock:
                    uri = self._drawn.get(ident)  # drawn meanwhile by the viewer this one waited for
                if uri is None:
                    uri = array_uri(result.overlay(rgb), OVERLAY_PX)
                    with self._lock:
                        shown = {r[1].inspection_id for r in (self._latest, self._failed) if r is not None}
                        self._drawn = {k: v for k, v in self._drawn.items() if k in shown} | {ident: uri}
        return uri

    def page(self) -> bytes:
        """The page's HTML (the HTTP server's threads)."""
        from reports.render import live_html

        with self._lock:
            latest, failed, records = self._latest, self._failed, list(self._recent)
        overlay = self._overlay(*latest) if latest is not None else None
        last_fail = None
        if failed is not None and (latest is None or failed[1].inspection_id != latest[1].inspection_id):
            last_fail = (failed[2], self._overlay(*failed[:2]))
        rc = self.cfg.reports
        return live_html(records, self._health(), overlay, rc.lang, rc.timezone, last_fail=last_fail).encode("utf-8")
