"""The Python API: `Inspector.load(model).inspect(image)`."""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
from PIL import Image

from inspector.decision import FAIL, MAX_MM_PER_PX, DecisionConfig, apply_type, decide, name_defect
from inspector.engines import Engine, open_engine
from inspector.result import InspectionResult
from model.errors import InspectorError
from model.framing import box_in_frame, ignored_in, place_map
from model.images import MIN_SIDE, array_to_rgb, decode_image, pil_to_rgb, preprocess, read_image_bytes, resize_map
from model.quality import WARNINGS, quality_causes, quality_stats


class LoadedImage(NamedTuple):
    """An image decoded once: its RGB pixels, the sha256 of its source bytes (or pixels) and its source's name."""

    rgb: np.ndarray
    sha256: str
    source: str


# what inspect() takes; arrays are RGB (not OpenCV's BGR: convert cv2.imread's with cv2.cvtColor(a, cv2.COLOR_BGR2RGB))
ImageInput = str | Path | bytes | bytearray | memoryview | np.ndarray | Image.Image | LoadedImage


def load_image(image: ImageInput, name: str | None = None) -> LoadedImage:
    """Decode a path, encoded bytes, a PIL image or a uint8/uint16 array (grey, RGB or RGBA); a LoadedImage is returned as it is (under `name`, if given).

    Files, bytes and PIL images are turned upright by their EXIF orientation; arrays are taken as they are, RGB (not
    OpenCV's BGR: it cannot be told from the pixels). uint16 pixels, a PIL image of mode I, F or I;16 and 16-bit files
    are stretched over their own range to 8 bits; an alpha channel is dropped. Anything else (floats, bool, other
    integers, another shape) is one InspectorError naming what was given and what to give."""
    if isinstance(image, LoadedImage):
        rgb = image.rgb  # one made by hand went in unchecked: float 0-1 pixels scored as near-black, grey or None a traceback
        if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
                and min(rgb.shape[:2]) >= MIN_SIDE):
            what = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
            raise InspectorError(f"image {name or image.source}: a LoadedImage of {what} pixels; its rgb must be uint8 "
                                 f"[H, W, 3] of at least {MIN_SIDE}x{MIN_SIDE}: make it with load_image(), or give the array itself")
        if not (isinstance(image.sha256, str) and len(image.sha256) == 64):  # the record's image.sha256, checked downstream
            raise InspectorError(f"image {name or image.source}: a LoadedImage whose sha256 is {image.sha256!r}; give the "
                                 "64 hex digits of its source's sha256, or make it with load_image()")
        # its source went into the record unchecked: bytes or a Path made to_record()'s JSON fail, a number broke the contract
        source = name or _name(image.source, "source")
        return image if source is image.source else image._replace(source=source)
    if type(image) is not np.ndarray and isinstance(image, np.ndarray):  # np.matrix stays 2-D: AxisError adding a channel
        image = np.asarray(image)
    if isinstance(image, np.ndarray) and image.dtype.kind == "u" and image.dtype.itemsize <= 2 and not image.dtype.isnative:
        image = image.astype(image.dtype.newbyteorder("="))  # big-endian 16-bit (a FITS or network camera's) is uint16 too
    if isinstance(image, (str, Path)):
        if not str(image):
            raise InspectorError("image '': an empty path; give an image file")
        if isinstance(image, str) and (wrong := _no_path(image)):
            raise InspectorError(wrong)
        rgb, data = read_image_bytes(image)
        return LoadedImage(rgb, hashlib.sha256(data).hexdigest(), name or str(image))
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        return LoadedImage(decode_image(data, name or "payload"), hashlib.sha256(data).hexdigest(), name or "bytes")
    if isinstance(image, np.ndarray):
        if image.dtype not in (np.uint8, np.uint16):  # array_to_rgb's "scale floats to 0-255" left them floats, refused again
            raise InspectorError(f"image {name or 'array'}: dtype {image.dtype}; give uint8 or uint16 pixels, "
                                 f"e.g. {_CONVERT.get(image.dtype.kind, 'a.astype(np.uint8) for values 0-255')}")
        return LoadedImage(array_to_rgb(image, name or "array"), hashlib.sha256(image.tobytes()).hexdigest(), name or "array")
    if isinstance(image, Image.Image):
        try:
            rgb = pil_to_rgb(image, name or "PIL image")
        except (AssertionError, AttributeError, ValueError):  # Pillow's bare assert (AttributeError under -O) on a closed
            # file; a closed GIF or TIFF says "Operation on closed image" (ValueError) when asked for its second page
            if getattr(image, "fp", True) is not None:
                raise
            raise InspectorError(f"image {name or 'PIL image'}: its file was closed before its pixels were read (a `with "
                                 "Image.open(...)` block ended); call .load() inside the block, or give the path") from None
        return LoadedImage(rgb, hashlib.sha256(rgb.tobytes()).hexdigest(), name or "PIL image")
    raise InspectorError(f"image of type {type(image).__name__}: give a path, encoded bytes, a PIL image or a uint8/uint16 array")


T = TypeVar("T")


def _no_path(text: str) -> str | None:
    """Why a str given as an image is no file's path, or None: Path() made "http://host/a.png" "http:/host/a.png", said
    to be "no such file"; a str of image data (bytes decoded) was printed whole, NUL characters and all."""
    if "\x00" in text:
        return (f"image str of {len(text)} characters holding a NUL character: no path holds one; give encoded image "
                "data as bytes, not str")
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]+://", text):
        return f"image {text}: a URL, which is not fetched; download the image and give its file's path or its bytes"
    return None

# how to make uint8 pixels of an array of another kind of number, by numpy's dtype kind
_CONVERT = {"f": "(a * 255).clip(0, 255).astype(np.uint8) for values 0-1, a.clip(0, 255).astype(np.uint8) for 0-255",
            "b": "a.astype(np.uint8) * 255 for a mask"}


def _threshold(name: str, value: object) -> float | None:
    """A threshold as a plain float (numpy's leaked into results and records), or None; one line if it is no finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # complex passed, then failed comparing
        raise InspectorError(f"{name} threshold {value!r}: give a number")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float's range
        raise InspectorError(f"{name} threshold of {len(str(abs(int(value))))} digits: give a finite score") from None
    if not math.isfinite(number):  # infinity would PASS every part; NaN FAILs every one, and its record is no JSON
        raise InspectorError(f"{name} threshold {value}: give a finite score")
    return number


def _region_rules(d: DecisionConfig) -> dict:
    """A DecisionConfig's region fields checked, as plain numbers: mm_per_px=nan recorded every area as 0.0 mm2, inf was an
    OverflowError at the first FAIL, and max_regions=0 (or below) FAILed parts with no region to show."""
    def number(name: str, value: object, low: float, fix: str, whole: bool = False, high: float = math.inf) -> float | int:
        try:
            ok = isinstance(value, numbers.Integral if whole else numbers.Real) and not isinstance(value, bool) \
                and (whole or math.isfinite(float(value))) and low <= value <= high and not (name == "mm_per_px" and value == 0)
        except OverflowError:  # an int too large for a float
            ok = False
        if not ok:
            raise InspectorError(f"DecisionConfig {name}={value!r}: give {fix}")
        return int(value) if whole else float(value)

    mm = d.mm_per_px
    return {"mm_per_px": None if mm is None else number("mm_per_px", mm, 0.0, f"the millimetres per pixel, above 0 and at most {MAX_MM_PER_PX:g}, or None",
                                                                  high=MAX_MM_PER_PX),
            "max_regions": number("max_regions", d.max_regions, 1, "a whole number of regions, at least 1", whole=True),
            "min_region_px": number("min_region_px", d.min_region_px, 0, "a whole number of pixels, 0 or more", whole=True),
            "unknown_cutoff": number("unknown_cutoff", d.unknown_cutoff, 0.0, "a probability in [0, 1]", high=1.0)}


def _name(value: object, what: str) -> str | None:
    """A serial, id or source as the record's string: a number there broke the contract; a Path made to_record()'s
    JSON fail long after the call that gave it."""
    if value is None or isinstance(value, str):
        return value
    if what == "source" and isinstance(value, Path):
        return str(value)
    raise InspectorError(f"{what} {value!r}: give a str or None, not {type(value).__name__} (e.g. str({value!r}))")


def _one_each(given: object, name: str, n: int) -> list:
    """inspect_batch's serials, sources or ids as a list of n (None: n Nones): a str was split into one serial per
    character ("A7": 'A' and '7'), a dict taken as its keys, a set in no order to pair with the images."""
    if given is None:
        return [None] * n
    if isinstance(given, (str, Path, bytes, bytearray, memoryview)):
        raise InspectorError(f"inspect_batch: {name} is one {type(given).__name__} ({given!r:.40}); give a list of one for "
                             f"each image (e.g. {name}=[{given!r:.40}] for one image)")
    if isinstance(given, (Mapping, AbstractSet)):
        raise InspectorError(f"inspect_batch: {name} is a {type(given).__name__}; give a list of one for each image, in the "
                             "images' order" + (f" (e.g. {name}=list(d.values()))" if isinstance(given, Mapping) else ""))
    try:
        given = list(given)  # a tuple or a generator too
    except TypeError:
        raise InspectorError(f"inspect_batch: {name} is a {type(given).__name__}; give a list of one for each image, or none") from None
    if len(given) != n:
        raise InspectorError(f"inspect_batch: {len(given)} {name} for {n} images; give one for each image, or none")
    return given


class _Shared:
    """What an Inspector shares with its with_thresholds copies: one engine call at a time (a TensorRT engine's one
    execution context takes each call's shape and buffer addresses: two threads' calls interleaved would read one
    part's outputs as another's), and whether close() freed the engine."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.closed = False
        _ALL_SHARED.add(self)

    def _after_fork(self) -> None:
        # a process forked while another thread inspected got the lock held, by a thread it does not have: its every
        # inspection waited forever
        self.lock = threading.Lock()


_ALL_SHARED: weakref.WeakSet[_Shared] = weakref.WeakSet()  # each Inspector's, for fork(): one handler for them all
os.register_at_fork(after_in_child=lambda: [shared._after_fork() for shared in list(_ALL_SHARED)])


class Inspector:
    """Scores images with an engine and turns scores into verdicts and defect regions.

    Safe to call from several threads: decoding and decisions run in parallel, the engine one batch at a time (for
    parallel inference, one Inspector per thread). It pickles for a worker process (an export's file is opened again
    there), and works in a forked one, where a checkpoint's torch runs on one thread. close(), or a `with` block, frees
    the model."""

    def __init__(self, engine: Engine, decision: DecisionConfig | None = None, station: str | None = None) -> None:
        if decision is not None and not isinstance(decision, DecisionConfig):  # a dict: AttributeError 'image_threshold'
            raise InspectorError(f"decision of type {type(decision).__name__}: give an inspector.decision.DecisionConfig "
                                 "(e.g. DecisionConfig(**d) for a dict d) or None")
        d = decision or DecisionConfig()
        # checked here too (DecisionConfig(image_threshold=nan) made records of invalid JSON), and a copy: the
        # caller's config changed later must not change verdicts in another thread
        self.decision = replace(d, image_threshold=_threshold("image", d.image_threshold), pixel_threshold=_threshold("pixel", d.pixel_threshold),
                                **_region_rules(d))
        self.engine = engine
        self.station = _name(station, "station")
        self._shared = _Shared()

    @classmethod
    def load(cls, model: str | Path, device: str = "cpu", decision: DecisionConfig | None = None, station: str | None = None) -> Inspector:
        """Open a checkpoint directory or an exported model."""
        if not isinstance(model, (str, Path)) or model == "":  # open_engine's TypeError named neither the argument nor the fix;
            # "" (an unset variable) opened the folder one was in
            raise InspectorError(f"model {model!r}: give the path of a checkpoint from `inspector fit` or of an exported model")
        if not isinstance(device, str):  # None or 0: AttributeError 'partition', after the manifest was read
            raise InspectorError(f"device {device!r}: give 'cpu', 'cuda' or 'cuda:N' (a str)")
        return cls(open_engine(model, device=device), decision, station)

    def close(self, timeout: float | None = None) -> bool:
        """Free the model (its memory, a GPU's too), for this Inspector and its with_thresholds copies, once an
        inspection in progress ends; they refuse to inspect after. Closing again does nothing. `timeout`: wait at most
        that long for the inspection in progress, and leave the model open (False) if it has not ended by then."""
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or math.isnan(timeout)):
            raise InspectorError(f"close: timeout {timeout!r}; give the seconds to wait, or None to wait until it ends")
        # inf (or 1e300) as "wait for good": the lock's OverflowError ('timestamp out of range')
        wait = -1 if timeout is None or timeout >= threading.TIMEOUT_MAX else max(float(timeout), 0.0)
        if not self._shared.lock.acquire(timeout=wait):
            return False
        try:
            if not self._shared.closed:
                self._shared.closed = True
                self.engine.close()
        finally:
            self._shared.lock.release()
        return True

    def __enter__(self) -> Inspector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        # an Inspector pickled (multiprocessing sends one to its workers) before it held a lock, which does not: a
        # copy, with an engine of its own, gets a lock of its own
        return {**self.__dict__, "_shared": self._shared.closed}

    def __setstate__(self, state: dict) -> None:
        closed = state.pop("_shared")
        self.__dict__.update(state, _shared=_Shared())
        self._shared.closed = closed

    def _closed(self) -> InspectorError:
        return InspectorError(f"inspector of model {self.engine.meta.path}: closed; load the model again")

    @property
    def image_threshold(self) -> float:
        t = self.decision.image_threshold
        return self.engine.meta.image_threshold if t is None else t

    @property
    def pixel_threshold(self) -> float:
        t = self.decision.pixel_threshold
        return self.engine.meta.pixel_threshold if t is None else t

    def with_thresholds(self, image: float | None = None, pixel: float | None = None) -> Inspector:
        """A copy that uses other thresholds (the graph is unchanged); None keeps the current one. It shares the
        model, and close(), with this one."""
        d = self.decision
        image = d.image_threshold if image is None else _threshold("image", image)
        pixel = d.pixel_threshold if pixel is None else _threshold("pixel", pixel)
        copy = Inspector(self.engine, replace(d, image_threshold=image, pixel_threshold=pixel), self.station)
        copy._shared = self._shared
        return copy

    def inspect(self, image: ImageInput, *, serial: str | None = None, source: str | None = None,
                inspection_id: str | None = None) -> InspectionResult:
        """Inspect one image: a path, encoded bytes, a PIL image, a uint8/uint16 array (grey, RGB or RGBA; not BGR)
        or a LoadedImage."""
        return self.inspect_batch([image], serials=[serial], sources=[source], ids=[inspection_id])[0]

    def inspect_batch(self, images: Iterable[ImageInput], serials: Sequence[str | None] | None = None,
                      sources: Sequence[str | None] | None = None, ids: Sequence[str | None] | None = None) -> list[InspectionResult]:
        """Inspect several images (any sizes) in one forward pass (none: no results)."""
        if isinstance(images, (str, Path, bytes, bytearray, memoryview, np.ndarray, Image.Image, LoadedImage)):  # one image, iterated by character or row
            raise InspectorError(f"inspect_batch: give a list of images, not one {type(images).__name__}; or call inspect()")
        if isinstance(images, (Mapping, AbstractSet)):  # a dict's keys were inspected as paths; a set's order is no order
            raise InspectorError(f"inspect_batch: give a list of images, not a {type(images).__name__}"
                                 + ("; for {serial: image}, give list(d.values()) and serials=list(d)" if isinstance(images, Mapping) else ""))
        try:
            images = list(images)  # a generator or a tuple too
        except TypeError:
            raise InspectorError(f"inspect_batch: give a list of images, not a {type(images).__name__}") from None
        if self._shared.closed:
            raise self._closed()
        n = len(images)
        if not n:
            return []
        serials, sources, ids = (_one_each(given, name, n) for name, given in (("serials", serials), ("sources", sources), ("ids", ids)))
        serials = [_name(s, "serial") for s in serials]
        sources = [_name(s, "source") for s in sources]
        ids = [_name(s, "inspection_id") for s in ids]
        t0 = time.perf_counter()
        loaded = [_placed(i, n, load_image, img, src) for i, (img, src) in enumerate(zip(images, sources, strict=True))]
        t1 = time.perf_counter()
        meta = self.engine.meta
        # edge: a part whose region reaches past the frame's edge is judged on what is in it, with a warning
        located = [_placed(i, n, partial(meta.framing.located, edge=True), rgb, src) for i, (rgb, _, src) in enumerate(loaded)]
        batch = np.stack([_placed(i, n, preprocess, rgb, meta.input_size, box, src)
                          for i, ((rgb, _, src), (box, _)) in enumerate(zip(loaded, located, strict=True))])
        training = meta.manifest.get("training") or {}
        sizes, quality = training.get("image_size"), training.get("image_quality")
        stats = quality_stats(batch) if quality else None
        t_pre = time.perf_counter()
        with self._shared.lock:
            if self._shared.closed:  # by another thread meanwhile
                raise self._closed()
            t2 = time.perf_counter()  # after waiting for another thread's batch, which is not this one's inference time
            out = self.engine.infer(batch)
        t3 = time.perf_counter()
        results = []
        for i, (rgb, digest, src) in enumerate(loaded):
            box, framed = located[i]
            seen = [WARNINGS[c] for c in quality_causes(stats[i], quality)] if quality else []
            warnings = [w for w in (unlike_training(rgb.shape[:2], sizes, meta.framing.fixed), framed, *seen) if w]
            td = time.perf_counter()
            amap = resize_map(out.amap[i].astype(np.float32), rgb.shape[:2] if box is None else (box[3], box[2]))
            score = float(out.score[i])
            verdict, regions = decide(score, judged(amap, meta.framing.ignored), self.image_threshold, self.pixel_threshold, self.decision)
            found = getattr(regions, "found", len(regions))
            if box is not None:  # regions were found within the region of interest, as the model saw it
                regions = [replace(r, box=box_in_frame(r.box, box, rgb.shape[:2])) for r in regions]
                amap = place_map(amap, rgb.shape[:2], box)
            probs_i = out.type_probs[i] if out.type_probs is not None and verdict == FAIL else None
            defect_type, type_conf, type_probs = name_defect(probs_i, meta.class_names, self.decision)
            apply_type(regions, defect_type, type_conf)
            timings = {"decode": (t1 - t0) * 1000 / n, "preprocess": (t_pre - t1) * 1000 / n, "infer": (t3 - t2) * 1000 / n,
                       "decision": (time.perf_counter() - td) * 1000}
            results.append(InspectionResult(
                inspection_id=ids[i] or uuid.uuid4().hex,
                verdict=verdict,
                score=score,
                threshold=self.image_threshold,
                pixel_threshold=self.pixel_threshold,
                regions=regions,
                regions_found=found,
                anomaly_map=amap,
                image_shape=rgb.shape[:2],
                image_sha256=digest,
                model={"id": meta.model_id, "backbone": meta.backbone, "sha256": meta.sha256, "runtime": meta.runtime},
                timings_ms=timings,
                station=self.station,
                serial=serials[i],
                source=src,
                defect_type=defect_type,
                type_confidence=type_conf,
                type_probs=type_probs,
                warnings=warnings,
                roi=box,
                ignored=meta.framing.ignored,
            ))
        return results


def _placed(i: int, n: int, step: Callable[..., T], *args: Any) -> T:
    """step(*args), its error naming the image's place in a batch: "image array: 50x50 px does not contain the model's
    region of interest" did not say which."""
    try:
        return step(*args)
    except InspectorError as exc:
        if n == 1:
            raise
        raise type(exc)(f"inspect_batch: images[{i}]: {exc}") from None


def judged(amap: np.ndarray, ignored: np.ndarray | None) -> np.ndarray:
    """The map as regions are found in it: don't-care pixels (`--ignore`, at the input size) never part of one. They
    hold the map's least value, which a part failed all over (a missing part) still has above the pixel threshold."""
    if ignored is None:
        return amap
    return np.where(ignored_in(ignored, amap.shape, None), -np.inf, amap).astype(np.float32)


FIXED_REGION_SLACK = 1.02  # a fixed region's frame may differ from the training frames' sizes by this much (2 %)


def unlike_training(shape: tuple[int, int], sizes: dict | None, fixed_region: bool = False) -> str | None:
    """A warning when an image's size or shape is far from every training image's (more than twice or half their
    sides, or a width/height ratio 25 % beyond theirs): a camera's resolution, crop or orientation has changed,
    and the model judges a part it was never shown. With a `fixed_region` (a region of interest in pixels, not located),
    beyond the training sizes by 2 %: the region then cuts another place of the frame (a 320 px frame on a model of
    240 px frames went unsaid). None for checkpoints that record no sizes, or record them malformed (a hand-edited,
    resealed manifest: every inspection raised TypeError, as model.quality's ranges did)."""
    from model.quality import number_pair

    pairs = [number_pair(sizes.get(k)) for k in ("min", "max", "aspect")] if isinstance(sizes, dict) else [None]
    if not all(p is not None and min(p) > 0 for p in pairs):
        return None
    h, w = shape
    (w_lo, h_lo), (w_hi, h_hi), (a_lo, a_hi) = pairs
    side, ratio = (FIXED_REGION_SLACK, FIXED_REGION_SLACK) if fixed_region else (2.0, 1.25)
    if w_lo / side <= w <= w_hi * side and h_lo / side <= h <= h_hi * side and a_lo / ratio <= w / h <= a_hi * ratio:
        return None
    seen = f"{w_lo}x{h_lo}" if (w_lo, h_lo) == (w_hi, h_hi) else f"{w_lo}x{h_lo} to {w_hi}x{h_hi}"
    return (f"image {w}x{h} px is unlike the training images ({seen} px); check the camera's resolution, crop and "
            "orientation, or fit on images like it")
