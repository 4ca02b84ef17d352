"""Which part of each frame the model is given: all of it, a fixed region of interest, or a region that follows the
part (found by matching the training reference's region within a margin around its place); and, within that,
don't-care regions (`--ignore`, model/ignore.py) the graph hides before it looks."""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from model.errors import InspectorError

Roi = tuple[int, int, int, int]  # a region of interest: left, top, width, height in source pixels
MIN_ROI_SIDE = 16
ROI_HINT = (f"give X,Y,W,H in pixels of the training images (left, top, width, height; W and H at least {MIN_ROI_SIDE}), "
            "e.g. 100,50,640,480")
REFERENCES = 100  # training images whose aligned edges make the --locate template
TEMPLATE_SIDE = 256  # the template is matched at no more than this size: the search stays a few ms a frame
TURN_STEP = 2.0  # degrees between the angles --turn tries first (then refined to a quarter of that)
MAX_TURN = 45


class Box(NamedTuple):
    """Where a frame's region is: the rectangle `x, y, w, h` turned by `angle` degrees (counter-clockwise as shown)
    about its own centre (`--turn`); a plain region of interest is one at angle 0."""

    x: int
    y: int
    w: int
    h: int
    angle: float = 0.0


def _rotation(angle: float) -> np.ndarray:
    """2x2: a turn by `angle` degrees, counter-clockwise as shown (y down), as cv2.getRotationMatrix2D turns."""
    a = math.radians(angle)
    return np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])


def _affine(box: Roi | Box) -> np.ndarray:
    """2x3: the region's pixel (u, v) -> its place in the frame."""
    x, y, w, h = box[:4]
    rot = _rotation(box[4] if len(box) > 4 else 0.0)
    centre = np.array([x + w / 2.0, y + h / 2.0])
    return np.hstack([rot, (centre - rot @ np.array([w / 2.0, h / 2.0]))[:, None]])


def turned(box: Roi | Box | None) -> bool:
    return box is not None and len(box) > 4 and box[4] != 0.0


def corners(box: Roi | Box) -> np.ndarray:
    """[4, 2] float: the region's corners (x, y) in the frame."""
    w, h = box[2], box[3]
    return _in_frame(np.array([[0, 0], [w, 0], [w, h], [0, h]], float), box)


def _in_frame(points: np.ndarray, box: Roi | Box) -> np.ndarray:
    """Points [N, 2] (x, y) in the region's own pixels -> in the frame."""
    a = _affine(box)
    return points @ a[:, :2].T + a[:, 2]


def _warp_flags(image: np.ndarray) -> tuple[np.ndarray, int]:
    """A mask (bool) as uint8 with nearest-neighbour sampling, anything else as it is with bilinear."""
    return (image.astype(np.uint8), cv2.INTER_NEAREST) if image.dtype == bool else (image, cv2.INTER_LINEAR)


def check_roi(roi: Roi) -> Roi:
    """A region of interest as four whole numbers, at least MIN_ROI_SIDE px wide and high; else one line."""
    values = tuple(roi)
    if len(values) != 4 or not all(isinstance(v, int) for v in values) or values[0] < 0 or values[1] < 0 \
            or values[2] < MIN_ROI_SIDE or values[3] < MIN_ROI_SIDE:
        raise InspectorError(f"region of interest {','.join(map(str, values))}: {ROI_HINT}")
    return values


def crop(rgb: np.ndarray, box: Roi | Box | None, name: str = "array") -> np.ndarray:
    """The part `box` of an image [H, W, ...] (turned upright, for a turned Box); the whole image for None."""
    if box is None:
        return rgb
    x, y, w, h = box[:4]
    height, width = rgb.shape[:2]
    if turned(box):  # a turned region's corners may leave the frame (they are filled from its edge); its centre may not
        cx, cy = corners(box).mean(axis=0)
        outside = not (0 <= cx < width and 0 <= cy < height)
    else:
        outside = x < 0 or y < 0 or x + w > width or y + h > height
    if outside:
        raise _not_inside(name, (width, height), box)
    if not turned(box):
        return rgb[y : y + h, x : x + w]
    image, interp = _warp_flags(rgb)
    out = cv2.warpAffine(image, _affine(box), (w, h), flags=interp | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return out > 0 if rgb.dtype == bool else out


def _cut(image: np.ndarray, box: Roi | Box) -> np.ndarray:
    """The part `box` of an image (turned upright), wherever it lies: what is beyond the frame is filled from its edge."""
    return cv2.warpAffine(image, _affine(box), (box[2], box[3]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _beyond(box: Roi | Box, shape: tuple[int, int]) -> float:
    """How far (px) the region `box` reaches past the edges of a frame of `shape` (H, W) at most; 0 inside it."""
    pts = corners(box)
    return float(max(0.0, -pts.min(), *(pts.max(axis=0) - (shape[1], shape[0]))))


def _not_inside(name: str, size: tuple[int, int], box: Roi | Box) -> InspectorError:
    """The one-line error of an image of `size` (width, height) that does not contain the region `box`."""
    x, y, w, h = box[:4]
    return InspectorError(f"image {name}: {size[0]}x{size[1]} px does not contain the model's region of interest "
                          f"{x},{y},{w},{h} (left, top, width, height); check the camera's resolution and framing, "
                          "or fit with a --roi that lies inside every image")


def place_map(amap: np.ndarray, shape: tuple[int, int], box: Roi | Box) -> np.ndarray:
    """A region's map (or mask) [h, w] at its place in the whole image (H, W); the rest, not inspected, holds the
    map's least value (False for a mask)."""
    least = 0.0 if amap.dtype == bool else float(amap.min())
    if turned(box):
        image, interp = _warp_flags(amap)
        out = cv2.warpAffine(image, _affine(box), (shape[1], shape[0]), flags=interp, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=least)
        return out > 0 if amap.dtype == bool else out
    x, y, w, h = box[:4]
    full = np.full(shape, least, dtype=amap.dtype)
    full[y : y + h, x : x + w] = amap
    return full


def box_in_frame(inner: Roi, box: Roi | Box, shape: tuple[int, int]) -> Roi:
    """A box (x, y, w, h) found in a region's own pixels, as the box that holds it in the whole image (H, W), at
    least a pixel wide and high inside it: a turned region's corner may leave the frame, and what was found there
    (pixels filled from the frame's edge, `crop`) is shown at that edge (a box wholly outside had a negative width)."""
    if not turned(box):
        return inner[0] + box[0], inner[1] + box[1], inner[2], inner[3]
    pts = _in_frame(corners(Box(*inner)), box)
    last = np.array([shape[1] - 1, shape[0] - 1])
    x0, y0 = np.clip(np.floor(pts.min(axis=0)), 0, last).astype(int)
    x1, y1 = np.clip(np.ceil(pts.max(axis=0)), (x0 + 1, y0 + 1), last + 1).astype(int)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def region_mask(shape: tuple[int, int], box: Roi | Box) -> np.ndarray:
    """bool [H, W]: the pixels of an image of `shape` that `box` covers (where `place_map` puts a region's map)."""
    return place_map(np.ones((box[3], box[2]), bool), shape, box)


def ignored_in(ignored: np.ndarray, shape: tuple[int, int], box: Roi | Box | None) -> np.ndarray:
    """A don't-care mask at the input size (`Framing.ignored`) in an image of `shape` (H, W) whose region is `box`
    (None: all of it), bool [H, W]: the pixels that the map, brought to the image as inspection brings it (resize_map,
    then place_map), reads from don't-care pixels alone, so that each holds exactly the map's least value. A mask
    resized on its own (nearest) took in a row that the map's interpolation mixes with inspected pixels; what `--ignore`
    asked for stays inside, since the mask at the input size holds a pixel more all round (model.ignore)."""
    from model.images import resize_map  # here: model.images imports this module

    box = box if box is not None else (0, 0, shape[1], shape[0])
    share = place_map(resize_map(ignored.astype(np.float32), (box[3], box[2])), shape, box)
    return (share >= 1.0 - 1e-6) & region_mask(shape, box)  # 1e-6: float rounding of interpolation weights that sum to 1


def locate_warning(roi: Roi, margin: int, frame: tuple[int, int], turn: float = 0.0) -> str | None:
    """A warning when `--locate margin` cannot move the region `roi` within frames of `frame` (H, W) as given: the region
    fills them, or the margin is more than the room around it (a turned one can still turn in place); or when it
    touches an edge of the first training image (`frame` is its size), whose part then likely reaches that edge: the
    template, made around the region there, never holds that side's outline, and parts are found less surely."""
    x, y, w, h = roi
    height, width = frame
    if x + w > width or y + h > height:  # a region beyond the frame is fit's one-line error
        return None
    room = max(x, y, width - x - w, height - y - h)
    where = f"the region {x},{y},{w},{h} of the {width}x{height} px training images"
    if not room and not turn:
        return f"--locate {margin}: {where} fills them, so it cannot move; drop --locate, or give a --roi smaller than the images"
    if margin > room and not turn:
        return f"--locate {margin}: {where} can move at most {room} px within them; give --locate {room} or less"
    sides = [side for side, gap in (("left", x), ("top", y), ("right", width - x - w), ("bottom", height - y - h)) if not gap]
    if room and sides:  # a region that fills the frame has no outline to miss beyond it
        named = " and ".join([", ".join(sides[:-1]), sides[-1]] if len(sides) > 1 else sides)
        return (f"--locate {margin}: {where} touches their {named} edge{'s' if len(sides) > 1 else ''}, so the template holds "
                "no outline of the part there and parts are found less surely; give the --roi in a first training image "
                "(in path order) whose part lies clear of the frame's edges")
    return None


def reference_paths(paths: list[Path]) -> list[Path]:
    """The training images a --locate template is made from: the first (where the region is) and others spread evenly."""
    return paths[:: max(1, len(paths) // REFERENCES)][:REFERENCES]


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb


def _edges(grey: np.ndarray, step: int) -> np.ndarray:
    """Gradient magnitude at 1/step scale: a part's outline and marks count, its grey level and lighting do not."""
    small = cv2.resize(grey, (grey.shape[1] // step, grey.shape[0] // step), interpolation=cv2.INTER_AREA) if step > 1 else grey
    g = cv2.GaussianBlur(small.astype(np.float32), (0, 0), 0.7)
    return cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))


def _encode(edges: np.ndarray) -> str:
    """A template as a base64 8-bit PNG (scaled to its maximum: normalised correlation ignores the scale)."""
    return png_b64(np.round(edges * (255.0 / max(float(edges.max()), 1e-6))).astype(np.uint8))


def png_b64(grey: np.ndarray) -> str:
    """A uint8 image [H, W] as base64 PNG text, for a manifest."""
    return base64.b64encode(cv2.imencode(".png", grey)[1].tobytes()).decode("ascii")


def png_from_b64(text: str, what: str) -> np.ndarray:
    """`png_b64`'s inverse; a damaged one is refused in one line naming `what`."""
    try:
        grey = cv2.imdecode(np.frombuffer(base64.b64decode(text, validate=True), np.uint8), cv2.IMREAD_GRAYSCALE)
    except ValueError:
        grey = None
    if grey is None:
        raise InspectorError(f"the model's {what} cannot be decoded; fit the model again")
    return grey


@dataclass(frozen=True)
class Framing:
    """The region of interest (None: whole frames) and, with `margin` > 0, how each frame's region is found: the edge
    template of `box` (the region with some context around it, in the reference image's pixels; a base64 PNG at
    1/`step` scale) is matched within `margin` px and, with `turn` > 0, within that many degrees either way; a best
    match below `weak` means the part was not found.
    `ignore` (a base64 PNG at the input size, non-zero: don't care) is what the graph hides of what it is given;
    without a region, it was drawn on frames of `frame` (width, height), and every image must have that size;
    `fill_around`: the graph fills it from the pixels around it (model.net.fill_around), else with the mean colour."""

    roi: Roi | None = None
    margin: int = 0
    template: str = ""
    step: int = 1
    box: Roi | None = None
    weak: float = 0.0
    ignore: str = ""
    frame: tuple[int, int] | None = None
    turn: float = 0.0
    fill_around: bool = False

    @classmethod
    def of(cls, net: Any) -> Framing:
        """A model's framing, from its NetConfig or its manifest's `net` section; ValueError when malformed."""
        get = net.get if isinstance(net, dict) else lambda k, d=None: getattr(net, k, d)
        ignore = get("ignore") or {}
        frame = tuple(int(v) for v in ignore["frame"]) if ignore.get("frame") else None
        if frame is not None and len(frame) != 2:
            raise ValueError(f"ignore frame {frame!r} is not two numbers")
        roi = get("roi")
        fill_around = bool(get("fill_around", False))
        if roi is None:
            return cls(ignore=str(ignore.get("mask", "")), frame=frame, fill_around=fill_around)
        roi = tuple(int(v) for v in roi)
        if len(roi) != 4:
            raise ValueError(f"roi {roi!r} is not four numbers")
        loc = get("locator") or {}
        box = tuple(int(v) for v in loc["box"]) if loc.get("box") else None
        if int(get("locate", 0) or 0) and (box is None or len(box) != 4 or not loc.get("template")):
            raise ValueError("locate is set without its locator (template, box)")
        return cls(roi, int(get("locate", 0) or 0), str(loc.get("template", "")), int(loc.get("step", 1)), box,
                   float(loc.get("weak", 0.0)), str(ignore.get("mask", "")), turn=float(get("turn", 0.0) or 0.0), fill_around=fill_around)

    @classmethod
    def fitted(cls, roi: Roi | None, margin: int, references: Callable[[], Iterable[tuple[np.ndarray, str]]],
               turn: float = 0.0) -> Framing:
        """The framing fit gives a model from reference images (`references()` yields (RGB, name) afresh for each of its
        three passes, so that they need not all be held at once). With a margin, the first image's
        region (and some context, so that the part's outline is inside it) is found in the others, and the template
        becomes their mean edges there, aligned: what the parts share (outline, marks) stays, their own texture fades."""
        if roi is None or not margin:
            return cls(roi)
        first, name = next(iter(references()))
        x, y, w, h = roi
        crop(first, roi, name)
        pad = max(4, math.ceil(0.1 * max(w, h)))
        x0, y0 = max(0, x - pad), max(0, y - pad)
        box = (x0, y0, min(first.shape[1], x + w + pad) - x0, min(first.shape[0], y + h + pad) - y0)
        step = max(1, math.ceil(max(box[2], box[3]) / TEMPLATE_SIDE))
        edges = _edges(_grey(crop(first, box, name)), step)
        if float(edges.mean()) < 1.0:
            raise InspectorError(f"--locate {margin}: the region {','.join(map(str, roi))} of {name} is nearly flat, with nothing to "
                                 "find the part by; give a --roi that includes the part's edges, or drop --locate")
        framing = cls(roi, margin, _encode(edges), step, box, turn=turn)
        for _ in range(2):  # a second pass aligns to the first mean, which no longer favours the first image's texture
            total = np.zeros_like(edges)
            count = 0
            for rgb, ref_name in references():
                dx, dy, angle, _ = framing._match(rgb, ref_name)
                # the box may reach past the frame's edge (the part by it, or found to `step` px): filled from the edge
                total += _edges(_grey(_cut(rgb, Box(x0 + dx, y0 + dy, box[2], box[3], angle))), step)
                count += 1
            framing = replace(framing, template=_encode(total / count))
        scores = [framing._match(rgb, ref_name)[3] for rgb, ref_name in references()]
        # half the typical match: a frame below it shows far less of what the training parts share
        return replace(framing, weak=round(0.5 * float(np.median(scores)), 4))

    def with_ignore(self, ignored: np.ndarray, frame_shape: tuple[int, int]) -> Framing:
        """This framing with a don't-care mask (bool, at the input size) drawn on frames of `frame_shape` (H, W)."""
        return replace(self, ignore=png_b64(ignored.astype(np.uint8) * 255),
                       frame=None if self.roi is not None else (frame_shape[1], frame_shape[0]), fill_around=True)

    def least_frame(self) -> tuple[int, int]:
        """(width, height) of the smallest frame this framing takes (a reload's trial image): the --ignore mask's frame,
        or one that just holds the region; 64 px a side without either."""
        if self.frame is not None:
            return self.frame
        if self.roi is not None:
            x, y, w, h = self.roi[:4]
            return x + w, y + h
        return 64, 64

    def summary(self) -> dict[str, Any]:
        """For reports: the region and the locating margin, when the model has a region; the share it ignores."""
        out = {} if self.roi is None else {"roi": list(self.roi), **({"locate": self.margin} if self.margin else {}),
                                           **({"turn": self.turn} if self.turn else {})}
        return {**out, "ignored": round(self.ignored_share, 4)} if self.ignore else out

    def describe(self) -> str:
        where = ""
        if self.roi is not None:
            turn = f" and {self.turn:g} degrees" if self.turn else ""
            where = f" of the region {','.join(map(str, self.roi))}" + (f" (following the part within {self.margin} px{turn})" if self.margin else "")
        return where + (f", {self.ignored_share:.0%} of it ignored" if self.ignore else "")

    def to_net(self) -> dict[str, Any]:
        """Its NetConfig fields."""
        locator = {"template": self.template, "step": self.step, "box": list(self.box), "weak": self.weak} if self.margin else {}
        ignore = {"mask": self.ignore, **({"frame": list(self.frame)} if self.frame else {})} if self.ignore else {}
        return {"roi": self.roi, "locate": self.margin, "locator": locator, "ignore": ignore, "turn": self.turn,
                "fill_around": self.fill_around}

    def keep(self) -> np.ndarray | None:
        """float32 [h, w] at the input size: 1 where the graph looks, 0 where `--ignore` hides; None without."""
        return None if self.ignored is None else (~self.ignored).astype(np.float32)

    @property
    def fixed(self) -> bool:
        """A region in pixels, not located: a frame of another size than training's puts it elsewhere on the part."""
        return self.roi is not None and not self.margin

    @property
    def ignored_share(self) -> float:
        return 0.0 if self.ignored is None else float(self.ignored.mean())

    @cached_property
    def ignored(self) -> np.ndarray | None:
        """bool [h, w] at the input size: the don't-care pixels (`--ignore`); None without."""
        return png_from_b64(self.ignore, "--ignore mask") > 0 if self.ignore else None

    def located(self, rgb: np.ndarray, name: str = "array", edge: bool = False) -> tuple[Roi | Box | None, str | None]:
        """This image's region (None: all of it; a Box when the part is turned) and a warning when the part was found
        only weakly; or, with `edge` (inspection: fit stops at any warning on a training image), when the part's region
        reaches more than the search's precision (`step` px) past the frame's edge: the region is kept in the frame, and
        what lies beyond is not inspected."""
        self._check_ignore_frame((rgb.shape[1], rgb.shape[0]), name)
        if self.roi is None or not self.margin:
            return self.roi, None
        dx, dy, angle, score = self._match(rgb, name)
        x, y, w, h = self.roi
        if angle:  # the region turns with the part about the template's centre, and is cut upright
            bx, by, bw, bh = self.box
            pivot = np.array([bx + bw / 2.0, by + bh / 2.0])
            centre = _rotation(angle) @ (np.array([x + w / 2.0, y + h / 2.0]) - pivot) + pivot + (dx, dy)
            # its centre kept in the frame (`crop`), as an upright region is kept whole in it, for a part by the edge
            found = Box(int(round(centre[0] - w / 2.0)), int(round(centre[1] - h / 2.0)), w, h, angle)
            box = Box(min(max(found.x, math.ceil(1 - w / 2.0)), math.floor(rgb.shape[1] - 1 - w / 2.0)),
                      min(max(found.y, math.ceil(1 - h / 2.0)), math.floor(rgb.shape[0] - 1 - h / 2.0)), w, h, angle)
        else:
            found = (x + dx, y + dy, w, h)
            box = (max(0, min(x + dx, rgb.shape[1] - w)), max(0, min(y + dy, rgb.shape[0] - h)), w, h)
        # no score or distance in the texts: the daemon logs a warning once per change of text, not once per part, and
        # shift reports count parts by text
        if score < self.weak:  # first: where the part was not surely found, neither is how far it reaches
            return box, ("the part matched the training parts' template only weakly within the --locate margin; it may be "
                         "missing, turned or out of place")
        if edge and _beyond(found, rgb.shape[:2]) > self.step:  # found to `step` px: a part just at the edge may seem past it
            return box, ("the part's region reaches past the frame's edge, so part of it was not inspected; check where the "
                         "part stops and the camera's framing")
        return box, None

    def check_size(self, size: tuple[int, int], name: str) -> None:
        """The one-line error `located` and `crop` give an image of `size` (width, height) too small for the region, or
        of another size than the --ignore mask's frame, wherever the part lies in it: for checks before any image is
        read. (A turned part's region may still leave a frame that holds it upright.)"""
        self._check_ignore_frame(size, name)
        if self.roi is None:
            return
        x, y, w, h = self.roi
        if x + w <= size[0] and y + h <= size[1]:
            return
        # located: the region follows the part, kept inside the frame, where the frame holds the template's search
        if not (self.margin and w <= size[0] and h <= size[1] and self._searchable(self._window(size), size)):
            raise _not_inside(name, size, self.roi)

    def _check_ignore_frame(self, size: tuple[int, int], name: str) -> None:
        if self.frame is not None and size != self.frame:
            w, h = self.frame
            raise InspectorError(f"image {name}: {size[0]}x{size[1]} px, but the model's --ignore regions are drawn on "
                                 f"{w}x{h} px images; give images of that size (the camera's frame), or fit with a --roi")

    def _window(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1): where the template is searched in a frame of `size` (width, height): its box and `margin`
        around, which may reach `margin` beyond the frame's edges (filled from the edge, `_match`), so that a template
        box the frame's edge cut in training still follows its part towards that edge (it stuck and matched elsewhere)."""
        bx, by, bw, bh = self.box
        m = self.margin
        return bx - m, by - m, min(size[0] + m, bx + bw + m), min(size[1] + m, by + bh + m)

    def _searchable(self, window: tuple[int, int, int, int], size: tuple[int, int]) -> bool:
        """Whether the window holds the template (at its step), and some of the frame of `size` (width, height)."""
        x0, y0, x1, y1 = window
        return ((x1 - x0) // self.step >= self._template.shape[1] and (y1 - y0) // self.step >= self._template.shape[0]
                and x0 < size[0] and y0 < size[1] and x1 > 0 and y1 > 0)

    def _match(self, rgb: np.ndarray, name: str) -> tuple[int, int, float, float]:
        """(dx, dy, angle, normalised correlation) of the best place for the template within the margin (and turn):
        the template's box, shifted by (dx, dy) and turned by `angle` degrees about its centre; not shifted or turned
        where nothing correlates (a score of 0 or less: a blank frame, or NaN, which counts as -1)."""
        bx, by, bw, bh = self.box
        height, width = rgb.shape[:2]
        x0, y0, x1, y1 = self._window((width, height))
        tpl, s = self._template, self.step
        if not self._searchable((x0, y0, x1, y1), (width, height)):
            crop(rgb, self.roi, name)  # the one-line error when the frame cannot hold the region
            return 0, 0, 0.0, -1.0  # it holds the region but not the context around it: not found
        inside = _grey(rgb[max(0, y0) : y1, max(0, x0) : x1])
        pads = (max(0, -y0), max(0, y1 - height), max(0, -x0), max(0, x1 - width))  # the window beyond the frame
        window = cv2.copyMakeBorder(inside, *pads, cv2.BORDER_REPLICATE)
        # beyond the frame nothing is seen: no edges there (the fill's streaks matched a template as well as a part did)
        seen = cv2.copyMakeBorder(np.ones_like(inside), *pads, cv2.BORDER_CONSTANT, value=0) if any(pads) else None
        pivot = np.array([(x1 - x0) / 2.0, (y1 - y0) / 2.0])

        def at(angle: float) -> tuple[float, np.ndarray]:
            """The best correlation with the window turned back by `angle`, and the template box's centre in the frame."""
            back = cv2.getRotationMatrix2D(tuple(pivot), -angle, 1.0)
            upright = window if not angle else cv2.warpAffine(window, back, window.shape[::-1], flags=cv2.INTER_LINEAR,
                                                              borderMode=cv2.BORDER_REPLICATE)
            edges = _edges(upright, s)
            if seen is not None:
                inframe = seen if not angle else cv2.warpAffine(seen, back, seen.shape[::-1], flags=cv2.INTER_NEAREST,
                                                                borderMode=cv2.BORDER_REPLICATE)
                edges *= cv2.resize(inframe, edges.shape[::-1], interpolation=cv2.INTER_NEAREST)
            scores = cv2.matchTemplate(edges, tpl, cv2.TM_CCOEFF_NORMED)
            _, best, _, (mx, my) = cv2.minMaxLoc(np.nan_to_num(scores, nan=-1.0))
            centre = np.array([mx * s + bw / 2.0, my * s + bh / 2.0])
            return float(best), _rotation(angle) @ (centre - pivot) + pivot + (x0, y0)

        angle = 0.0
        if not self.turn:
            best, centre = at(angle)
        else:  # every TURN_STEP degrees, then halving the step twice about the best
            angles = np.linspace(-self.turn, self.turn, 2 * math.ceil(self.turn / TURN_STEP) + 1)
            step = float(angles[1] - angles[0])
            found = {float(a): at(float(a)) for a in angles}
            for _ in range(2):
                step /= 2
                top = max(found, key=lambda a: found[a][0])
                found.update({a: at(a) for a in (top - step, top + step) if abs(a) <= self.turn and a not in found})
            angle = max(found, key=lambda a: found[a][0])
            best, centre = found[angle]
        if best <= 0.0:  # ties everywhere put a blank frame's region in the search's first corner, at its first angle
            return 0, 0, 0.0, best
        return int(round(centre[0] - bw / 2.0)) - bx, int(round(centre[1] - bh / 2.0)) - by, round(angle, 3), best

    @cached_property
    def _template(self) -> np.ndarray:
        return png_from_b64(self.template, "--locate template").astype(np.float32)
