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
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self._drawn: tuple[str, str] | None = None  # (inspection_id, overlay data URI)
        # one viewer draws a new part's overlay, the others wait for it: each screen at the line drew it again (0.7 s of
        # CPU for a 20 MP image, each, beside the inference)
        self._drawing = threading.Lock()

    def add(self, rgb: np.ndarray, result: InspectionResult, record: dict[str, Any]) -> None:
        """A stored result (the sink's thread): newest first."""
        with self._lock:
            self._latest = (rgb, result)
            self._recent.appendleft(record)

    def page(self) -> bytes:
        """The page's HTML (the HTTP server's threads)."""
        from reports.images import array_uri
        from reports.render import live_html

        with self._lock:
            latest, records, drawn = self._latest, list(self._recent), self._drawn
        overlay = None
        if latest is not None:
            rgb, result = latest
            if drawn is None or drawn[0] != result.inspection_id:
                with self._drawing:
                    with self._lock:
                        drawn = self._drawn  # drawn meanwhile by the viewer this one waited for
                    if drawn is None or drawn[0] != result.inspection_id:
                        drawn = (result.inspection_id, array_uri(result.overlay(rgb), OVERLAY_PX))
                        with self._lock:
                            self._drawn = drawn
            overlay = drawn[1]
        rc = self.cfg.reports
        return live_html(records, self._health(), overlay, rc.lang, rc.timezone).encode("utf-8")
