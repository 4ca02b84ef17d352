"""Fitting a station from good images: memory bank, global Gaussian, standardisation and calibration."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.backbones import DEFAULT_BACKBONE
from model.calibration import Policy, calibrate
from model.coreset import greedy_coreset
from model.data import Dataset
from model.defect_learning import DefectLearning, learn_defects
from model.errors import InspectorError
from model.extract import load_batches
from model.framing import MAX_TURN, Framing, Roi, check_roi, crop, reference_paths
from model.hashing import sha256_file
from model.head import AnomalyHead, position_stats
from model.ignore import ignore_mask, parse_ignore
from model.images import preprocess, read_image, read_image_header, upright_size
from model.metrics import f1_max
from model.net import InspectorNet, NetConfig
from model.overlap import cell_means, part_groups
from model.progress import Bar, BarFactory, silent
from model.quality import quality_stats, quality_summary

AUGMENTATIONS = {"hflip": (-1,), "vflip": (-2,), "rot180": (-2, -1)}
MAX_INPUT_SIZE = 1024  # patches grow with the side squared: 252 images at 1024 px give 4.1 M of 472 floats (7.8 GB)


def check_input_size(size: int) -> None:
    """The backbones' deepest level has stride 32: the input side must be a multiple of it."""
    if size < 64 or size > MAX_INPUT_SIZE or size % 32:
        raise InspectorError(f"--size {size}: give a multiple of 32 from 64 to {MAX_INPUT_SIZE} (e.g. 256)")


MAX_REF_RADIUS = 4  # (2r + 1)^2 shifted comparisons per reference: beyond this a part is matched almost anywhere


# Each training image is scored by a model of the others: of 2 images, each against one (a Gaussian of a single
# image), and new parts then scored about -1e13 against that scale, a black frame PASS; of 3, random noise PASSed.
MIN_GOOD = 5


@dataclass
class FitOptions:
    """Fitting settings; every field is recorded in the checkpoint manifest."""

    backbone: str = DEFAULT_BACKBONE
    layers: tuple[int, ...] = ()
    input_size: int = 256
    grid_stride: int = 8
    sigma: float = 4.0
    coreset_ratio: float = 0.01
    neighbours: int = 3  # a patch's distance is the mean over this many nearest bank patches (memory bank only)
    position_norm: bool = True  # patch score standardised per grid cell (model/head.py)
    position_map: bool = True  # with peer_position, the map is standardised by the peers' cell statistics too
    references: int = 0  # > 0: keep up to this many training images as references instead of a coreset bank
    ref_k: int = 10  # references compared with each image
    ref_radius: int = 1  # grid cells a patch may shift to find its match in a reference
    peers: int = 20  # score offset by the out-of-sample scores of this many most similar training images (0: off)
    peer_position: bool = True  # with peers and position_norm: the cell statistics come from those images too
    max_patches: int = 400_000
    global_weight: float = 0.5
    shrinkage: float = 0.01
    folds: int = 5
    normalize_input: bool = True
    augment: tuple[str, ...] = ()  # extra normal views for the bank and global model: hflip, vflip, rot180
    policy: Policy | None = None  # None: escape 1% when defects are available, else false alarms 1%
    defects: DefectLearning = field(default_factory=DefectLearning)  # learning from generated defects
    seed: int = 0
    batch_size: int = 16
    roi: Roi | None = None  # the part of each image to inspect (x, y, w, h in pixels); None: the whole image
    locate: int = 0  # > 0: that region follows the part, found within this many px of its place in the first image
    ignore: tuple[str, ...] = ()  # don't-care regions: rectangles X,Y,W,H or mask images, in training images' pixels
    turn: float = 0.0  # > 0: with locate, the part may also turn this many degrees either way

    def validate(self) -> None:
        if self.roi is not None:
            self.roi = check_roi(self.roi)
        # mask paths made absolute: `eval --new-parts` refits from these options, perhaps from another folder
        self.ignore = tuple(str(spec.resolve()) if isinstance(spec := parse_ignore(text), Path) else text for text in self.ignore)
        if self.locate < 0:
            raise InspectorError(f"--locate {self.locate}: give how many px the part may sit from its place in the first "
                                 "training image (e.g. 40), with the --roi that frames it there")
        if self.locate and self.roi is None:  # the value is fine: what is missing is said, not asked for again
            raise InspectorError(f"--locate {self.locate} needs a --roi, the region that follows the part, drawn where the "
                                 "first training image has it: add --roi X,Y,W,H, or leave --locate out")
        if not 0 <= self.turn <= MAX_TURN:
            raise InspectorError(f"--turn {self.turn:g}: give how many degrees (up to {MAX_TURN}) the part may turn either way "
                                 "from the first training image's pose (e.g. 10), with --roi and --locate")
        if self.turn and not self.locate:
            raise InspectorError(f"--turn {self.turn:g} needs --locate and its --roi: only a part that is found in each frame "
                                 "is turned back; add --roi X,Y,W,H --locate PX, or leave --turn out")
        if self.neighbours < 1:
            raise InspectorError(f"--neighbours {self.neighbours}: give at least 1 bank patch to measure a patch against (e.g. 3)")
        if not 0.0 < self.coreset_ratio <= 1.0:
            raise InspectorError(f"--coreset {self.coreset_ratio}: give a fraction in (0, 1], e.g. 0.1")
        check_input_size(self.input_size)
        bad = [a for a in self.augment if a not in AUGMENTATIONS]
        if bad:
            raise InspectorError(f"--augment {bad[0]!r}: choose from {', '.join(AUGMENTATIONS)} (only views that are still good parts)")
        if self.references < 0 or 0 < self.references < 2 + len(self.augment):
            raise InspectorError(f"--references {self.references}: give 0 (memory bank) or at least {2 + len(self.augment)} images, e.g. 256")
        if self.ref_k < 1:
            raise InspectorError(f"--ref-k {self.ref_k}: give at least 1 reference to compare with (e.g. 10)")
        if not 0 <= self.ref_radius <= MAX_REF_RADIUS:
            raise InspectorError(f"--ref-radius {self.ref_radius}: give 0 to {MAX_REF_RADIUS} grid cells (e.g. 1)")
        if self.references and self.defects.enabled:
            raise InspectorError("--references with --synth: learning from generated defects needs the memory bank; drop one of them")
        if self.peers < 0:
            raise InspectorError(f"--peers {self.peers}: give 0 (off) or how many similar training images to judge a part against (e.g. 20)")
        if not 0.0 <= self.global_weight <= 1.0:
            raise InspectorError(f"--global-weight {self.global_weight}: give a weight in [0, 1]")
        self.defects.validate()


@dataclass
class FitReport:
    """What fitting learnt besides the weights: goes into the manifest."""

    options: dict[str, Any]
    training: dict[str, Any]
    calibration: dict[str, Any]
    thresholds: dict[str, float]
    scores: dict[str, list[float]] = field(default_factory=dict)


def distinct_files(paths: list, root: Path | None = None, digests: dict[str, Any] | None = None) -> tuple[list, list[tuple[str, str]], str]:
    """`paths` without byte-identical copies, the first of each kept -> (kept, [(copy, the kept file), ...], sha256
    over the kept files' contents in order, which identifies the data a model was fitted on). A copy adds
    nothing to the bank, and as its twin's nearest neighbour it would make both look far more normal
    out-of-sample than any part is, skewing every statistic fitted from those scores. Given the data's `root`, each
    file's header is checked as it is read for its digest (`read_image_header`), and the files that cannot be used
    are named together in one line, before any fitting: one unreadable file at a time cost a rerun each. A given
    `digests` dict is filled with each kept file's sha256 -> the file."""
    first: dict[str, Any] = {} if digests is None else digests
    kept, copies, h = [], [], hashlib.sha256()
    problems: list[tuple[Any, InspectorError]] = []
    for p in paths:
        if root is None:
            digest = sha256_file(p)
        else:
            try:
                digest = hashlib.sha256(read_image_header(p)).hexdigest()
            except InspectorError as exc:
                problems.append((p, exc))
                continue
        if digest in first:
            copies.append((str(p), str(first[digest])))
        else:
            first[digest] = p
            kept.append(p)
            h.update(bytes.fromhex(digest))
    if problems:  # the run stops here: decoded whole, the others name any damaged body too, in this one line
        bad = {q for q, _ in problems}
        problems += _load_problems([p for p in paths if p not in bad])
        order = {p: i for i, p in enumerate(paths)}
        raise unusable_images(sorted(problems, key=lambda pe: order[pe[0]]), len(paths), root)
    return kept, copies, h.hexdigest()


def _added_good(paths: list, root: Path) -> list[dict[str, Any]]:
    """The training images from outside DATA (`fit --add-good`, e.g. QA's reviewed false alarms) by folder: without it a
    refit from reviews could not be traced to the folders that went in."""
    root = root.resolve()
    folders = Counter(str(Path(p).resolve().parent) for p in paths if not Path(p).resolve().is_relative_to(root))
    return [{"folder": folder, "n_images": n} for folder, n in sorted(folders.items())]


SHOWN_PROBLEMS = 3  # unusable training images named in the error line; the count says how many there are in all


def unusable_images(problems: list[tuple[Any, InspectorError]], total: int, root: Path | None, what: str = "training") -> InspectorError:
    """One line for the training (or test) images that cannot be used: how many, and the first few, each with its own error's
    reason (the words read_image gives it alone)."""
    def shown(path: Any, exc: InspectorError) -> str:
        path = Path(path)
        try:
            named = path.relative_to(root) if root is not None else path
        except ValueError:  # an --add-good folder's
            named = path
        reason = str(exc).removeprefix(f"image {path}: ")
        return f"{named} ({reason})"

    listed = ", ".join(shown(p, e) for p, e in problems[:SHOWN_PROBLEMS])
    more = f", and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    where = f"data {root}: " if root is not None else ""
    return InspectorError(f"{where}{len(problems)} of {total} {what} images cannot be used: {listed}{more}; "
                          f"remove or replace {'it' if len(problems) == 1 else 'them'}")


def _header_problems(paths: list) -> list[tuple[Any, InspectorError]]:
    """Each of `paths` whose header read_image_header refuses, with its error."""
    problems = []
    for p in paths:
        try:
            read_image_header(p)
        except InspectorError as exc:
            problems.append((p, exc))
    return problems


def check_test_headers(dataset: Dataset) -> None:
    """Every test image's header read, and all that cannot be used named in one line (unusable_images) before any work
    that reads them later: the first one stopped that work wherever it came, and the next one the following run."""
    if problems := _header_problems([s.path for s in dataset.test]):
        raise unusable_images(problems, len(dataset.test), dataset.root, "test")


def _load_problems(paths: list, size: tuple[int, int] | None = None, framing: Framing | None = None) -> list[tuple[Any, InspectorError]]:
    """Each of `paths` loaded as the feature pass loads it (decoded whole, and given the input `size`, framed and
    resized), in threads -> the ones that fail, with their errors."""
    from concurrent.futures import ThreadPoolExecutor

    def problem(p: Any) -> InspectorError | None:
        try:
            rgb = read_image(p)
            if size is not None:
                preprocess(rgb, size, framing.located(rgb, str(p))[0] if framing else None, str(p))
        except InspectorError as exc:
            return exc
        return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        return [(p, exc) for p, exc in zip(paths, pool.map(problem, paths), strict=True) if exc is not None]


def _whitening(x: torch.Tensor, shrinkage: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and whitening matrix W (so that |(x - mean) W| is the Mahalanobis distance), shrunk covariance."""
    x = x.double()
    mean = x.mean(dim=0)
    xc = x - mean
    cov = xc.T @ xc / max(x.shape[0] - 1, 1)
    cov = cov + shrinkage * cov.trace() / cov.shape[0] * torch.eye(cov.shape[0], dtype=cov.dtype)
    evals, evecs = torch.linalg.eigh(cov)
    return mean.float(), (evecs / evals.clamp_min(1e-12).sqrt()).float()


CHUNK = 64  # images at a time where a step's scratch memory grows with the batch (maps: about 5 MB per image)
# Fitting keeps the good images' patch distances per grid cell (4 KB an image at 256 px) and makes the full-size maps
# from them a chunk at a time where a step needs them: kept whole, the maps took about 1.5 MB an image.


def in_chunks(fn, *batched: torch.Tensor) -> torch.Tensor:
    """fn over `batched` tensors' first dimension, CHUNK images at a time, joined: as fn over all at once."""
    n = batched[0].shape[0]
    return torch.cat([fn(*(t[s : s + CHUNK] for t in batched)) for s in range(0, n, CHUNK)]) if n else fn(*batched)


def patch_rows(emb: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Embeddings [N, D, gh, gw] as patch rows [N * gh * gw, D] (image by image, row-major cells), or only `rows` of
    them, gathered alone rather than from a copy of every patch."""
    if rows is None:
        return emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
    cells = emb.shape[2] * emb.shape[3]
    cell = rows % cells
    return emb[rows // cells, :, cell // emb.shape[3], cell % emb.shape[3]]


def _peer_position_cells(head: AnomalyHead, dists: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Each image's distances [n, gh, gw] standardised by its peers' (`rows` [n, peers]) cell statistics."""
    return in_chunks(lambda d, r: head.position_cells(d, head.peer_position_stats(r)), dists, rows)


def map_maxima(head: AnomalyHead, cells: torch.Tensor) -> torch.Tensor:
    """The maximum of each image's smoothed map [n] from its grid cells [n, gh, gw], a chunk of maps at a time."""
    return in_chunks(lambda c: head.to_map(c).flatten(1).amax(dim=1), cells)


def _level_variance(emb: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """The sum over channels start..stop of each channel's variance over all images and grid cells (unbiased, as
    torch.var), accumulated CHUNK images at a time in float64 instead of from a float32 copy of the whole level."""
    s1 = torch.zeros(stop - start, dtype=torch.float64)
    s2 = torch.zeros_like(s1)
    for r in range(0, len(emb), CHUNK):
        x = emb[r : r + CHUNK, start:stop].double()
        s1 += x.sum(dim=(0, 2, 3))
        s2 += (x * x).sum(dim=(0, 2, 3))
    m = emb.shape[0] * emb.shape[2] * emb.shape[3]
    return ((s2 - s1 * s1 / m) / max(m - 1, 1)).sum().float()


def _first_views(sources: list[int]) -> torch.Tensor:
    """Row index of each source image's un-augmented view (its first occurrence), in source order."""
    first: dict[int, int] = {}
    for row, src in enumerate(sources):
        first.setdefault(src, row)
    return torch.tensor([first[i] for i in sorted(first)])


def _oos_global(pooled: torch.Tensor, source: torch.Tensor, first: torch.Tensor, folds: int, shrinkage: float, seed: int,
                owners: torch.Tensor | None = None) -> np.ndarray:
    """Out-of-fold Mahalanobis distances of the training images: each image is scored by a Gaussian
    fitted without it (nor its augmented views, nor, given `owners` [n], the images it shares an owner with)."""
    owners = torch.arange(first.numel()) if owners is None else owners
    n = int(owners.max()) + 1
    folds = max(2, min(folds, n))
    fold_of = torch.empty(n, dtype=torch.long)
    fold_of[torch.randperm(n, generator=torch.Generator().manual_seed(seed))] = torch.arange(n) % folds
    fold_of = fold_of[owners]
    out = torch.empty(first.numel())
    for k in range(folds):
        held = (fold_of == k).nonzero().squeeze(1)
        mean, w = _whitening(pooled[fold_of[source] != k], shrinkage)
        out[held] = (((pooled[first[held]] - mean) @ w) ** 2).sum(dim=1).sqrt()
    return out.numpy()


@torch.no_grad()
def _excluded_distances(head: AnomalyHead, emb: torch.Tensor, bank_owner: torch.Tensor, owners: torch.Tensor,
                        key: torch.Tensor | None = None) -> torch.Tensor:
    """Patch distances [n, gh, gw] of training images, each scored against the bank rows (or, given their global
    keys, the references) of other owners only: `bank_owner` gives each row's, `owners` [n] each image's (its
    own index to leave out its own patches; a part id to leave out the other captures of its part too)."""
    if head.references:
        return head.reference_distances(emb.float(), key, bank_owner.unsqueeze(0) == owners.unsqueeze(1))
    return torch.cat([head.patch_distances(emb[i : i + 1].float(), exclude=bank_owner == owners[i]) for i in range(emb.shape[0])])


def _oos_distances(head: AnomalyHead, emb: torch.Tensor, keys: torch.Tensor, bank_owner: torch.Tensor,
                   owners: torch.Tensor, bar: Bar, rows: torch.Tensor | None = None) -> torch.Tensor:
    """`_excluded_distances` of good images (or of their `rows`; `owners` [len(rows)] then), 8 at a time, gathered
    batch by batch: a copy of the rows' embeddings first took 1 MB an image (2.9 GB of 3,024 at once)."""
    rows = torch.arange(emb.shape[0]) if rows is None else rows
    out = []
    for s in range(0, rows.numel(), 8):
        r = rows[s : s + 8]
        out.append(_excluded_distances(head, emb[r], bank_owner, owners[s : s + 8], keys[r]))
        bar.update(out[-1].shape[0])
    bar.close()
    return torch.cat(out)


def _part_owners(parts: np.ndarray, peers: int) -> torch.Tensor | None:
    """Whom each training image is scored without for calibration, as consecutive ids [n]: its whole part (the
    other captures of it, `model.overlap.part_groups`) where the part holds at most half the images and the
    rest still give it its peers, else itself alone. None when no image has another capture to leave out."""
    n = parts.size
    _, part, counts = np.unique(parts, return_inverse=True, return_counts=True)
    size = counts[part]
    whole = (size > 1) & (2 * size <= n) & (n - size >= max(peers, 1))
    if not whole.any():
        return None
    return torch.from_numpy(np.unique(np.where(whole, part, counts.size + np.arange(n)), return_inverse=True)[1].reshape(-1))


def _left_out_position_cells(head: AnomalyHead, dists: torch.Tensor, self_dists: torch.Tensor, leave_out: torch.Tensor) -> torch.Tensor:
    """Each good image's distances [n, gh, gw] standardised by cell statistics of the stored `self_dists` without
    the images `leave_out` [n, n] marks for it (itself, or its whole part)."""
    d = self_dists.double()
    s1, s2 = d.sum(dim=0), (d * d).sum(dim=0)
    return torch.cat([head.position_cells(dists[i : i + 1], position_stats(s1 - d[out].sum(dim=0), s2 - (d[out] ** 2).sum(dim=0),
                                                                           len(d) - int(out.sum())).float())
                      for i, out in enumerate(leave_out)])


def _part_excluded_cells(head: AnomalyHead, dists: torch.Tensor, self_dists: torch.Tensor, owners: torch.Tensor,
                         pooled: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """The good images' distances with their part left out [n, gh, gw] -> (those distances, or None where the graph
    does not map them raw; them standardised per cell, or None; peer rows or None), as a new part of its kind gets
    them from the fitted head: peers, and cell statistics of the stored `self_dists`, from other parts only."""
    same = owners.unsqueeze(0) == owners.unsqueeze(1)
    rows = head.peer_rows(pooled, exclude=same) if head.peers else None
    pos_cells = None
    if head.peer_position:
        pos_cells = _peer_position_cells(head, dists, rows)
    elif head.position_norm:
        pos_cells = _left_out_position_cells(head, dists, self_dists, same)
    return None if head.position_map else dists, pos_cells, rows


def _fit_position_norm(head: AnomalyHead, dists: torch.Tensor, peer_rows: torch.Tensor | None) -> torch.Tensor:
    """Set the patch score's cell statistics from the good images' self-excluded distances [n, gh, gw] (and,
    with `peer_position`, keep those for the images' peers: `peer_rows` [n, peers], each image's *other*
    nearest images), and its standardisation from each image's positional map's maximum with statistics
    fitted without that image. -> those leave-one-out standardised distances [n, gh, gw]."""
    n = dists.shape[0]
    d = dists.double()
    s1, s2 = d.sum(dim=0), (d * d).sum(dim=0)
    head.pos_stats = position_stats(s1, s2, n).float()
    if head.peer_position:
        head.peer_dist = dists.float()
        pos_cells = _peer_position_cells(head, dists, peer_rows)  # as the graph computes them
    else:
        pos_cells = _left_out_position_cells(head, dists, dists, torch.eye(n, dtype=torch.bool))
    pos_max = map_maxima(head, pos_cells)
    head.pos_norm = torch.tensor([float(pos_max.mean()), max(float(pos_max.std()), 1e-6)])
    return pos_cells


def _fit_peer_keys(head: AnomalyHead, pooled: torch.Tensor) -> torch.Tensor:
    """Store the good images' pooled statistics [n, G], standardised per dimension, as the keys that find
    each part's peers. -> each good image's peers among the *other* good images [n, peers]."""
    loc, scale = pooled.mean(dim=0), pooled.std(dim=0).clamp_min(1e-6)
    head.peer_stats = torch.stack([loc, scale])
    head.peer_key = (pooled - loc) / scale
    return head.peer_rows(pooled, exclude=torch.eye(pooled.shape[0], dtype=torch.bool))


def _fit_peer_scores(head: AnomalyHead, peer_rows: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Store the good images' out-of-sample scores [n] as what their peers score.
    -> each good image's own peer offset, from its `peer_rows` [n, peers] (the others only) [n]."""
    head.peer_score = scores.float()
    return head.peer_offset(peer_rows)


@dataclass
class WithoutParts:
    """The good images' out-of-sample inputs to the score again, each image now scored without the other
    captures of its part too (where there are some). Self-exclusion leaves those in the bank, the global
    Gaussian and the peers, so a training image scores like its own twin and the calibration scores, which
    stand for new parts, come out too low and too alike: a good-only threshold then sits low (on magnetic
    tiles' new parts, 2.2 % false alarms for 1 % targeted). The model itself keeps the self-excluded
    statistics (excluding parts there ranked new parts worse)."""

    images: int  # how many good images are scored without the other captures of their part
    raw_cells: torch.Tensor | None
    pos_cells: torch.Tensor | None
    peer_rows: torch.Tensor | None
    glob_raw: np.ndarray


@dataclass
class GoodFit:
    """What the good-only steps leave for the steps after them (learning from defects, calibration)."""

    paths: list
    first_view: torch.Tensor  # embeddings of each good image (un-augmented view) [n, D, gh, gw], half
    raw_cells: torch.Tensor  # their out-of-sample patch distances [n, gh, gw] (`bank_maps` makes the maps)
    pos_cells: torch.Tensor | None  # the same standardised per cell [n, gh, gw] (position_norm)
    peer_rows: torch.Tensor | None  # each one's peers among the other good images [n, peers] (peers > 0)
    glob_raw: np.ndarray  # their out-of-fold global distances [n]
    rgbs: np.ndarray | None  # the good images at the input size [n, H, W, 3] uint8, when kept
    bank_size: int
    started: float
    data_sha256: str  # of the fitted files (`distinct_files`)
    without_parts: WithoutParts | None = None  # the calibration's inputs where some images are captures of one part
    copies: list[tuple[str, str]] = field(default_factory=list)  # training files left out as byte-identical copies
    image_size: dict | None = None  # the training images' sizes (image_size_summary), so inspection can flag a part unlike them
    image_quality: dict | None = None  # the range of their light, contrast and focus (model.quality), likewise


def fit(dataset: Dataset, options: FitOptions, progress: BarFactory = silent,
        framing: Framing | None = None) -> tuple[InspectorNet, FitReport]:
    """Fit a model on `dataset.train` (good images) and calibrate it; see FitOptions for the knobs, and
    `fit_good_only` for `framing`."""
    options = framed(options, framing)
    net, good = fit_good_only(dataset, options, progress, keep_images=options.defects.enabled, framing=framing)
    return finish_fit(net, good, dataset, options, progress)


def framed(options: FitOptions, framing: Framing | None) -> FitOptions:
    """`options` with the region settings of a given `framing` (a copy; as they are without one). Its --ignore mask
    is already drawn: the files it was drawn from are not read again (they may have moved or changed since)."""
    if framing is None:
        return options
    return replace(options, roi=framing.roi, locate=framing.margin, turn=framing.turn, ignore=())


@torch.no_grad()
def fit_good_only(dataset: Dataset, options: FitOptions, progress: BarFactory = silent,
                  keep_images: bool = False, framing: Framing | None = None) -> tuple[InspectorNet, GoodFit]:
    """Memory bank, global Gaussian and the standardisation of both, from the good training images. `framing`: a
    model's own (region, locator, don't-care mask), used as it is, so that a refit (`eval --new-parts`) judges what
    that model judges; without it, one is made from `options` and the images (the locator from the first of them)."""
    options = framed(options, framing)
    options.validate()
    t0 = time.perf_counter()
    torch.manual_seed(options.seed)
    size = (options.input_size, options.input_size)
    digests: dict[str, Any] = {}
    paths, copies, data_sha256 = distinct_files([s.path for s in dataset.train], dataset.root, digests)
    check_test_headers(dataset)  # calibration reads them after the fit: found minutes late
    from model.evaluate import check_masks

    check_masks(dataset.test, dataset.root)  # so do its masks, and the first bad one stopped it then, named alone
    _refuse_test_defects_in_training(dataset, digests)
    peers = max(0, min(options.peers, len(paths) - 1))  # each training image is later judged against the others only
    peer_position = bool(peers and options.position_norm and options.peer_position)
    if len(paths) < MIN_GOOD:
        dropped = f" ({len(copies)} byte-identical copies not counted)" if copies else ""
        raise InspectorError(f"data {dataset.root}: {len(paths)} distinct good image(s){dropped}; fitting needs at least {MIN_GOOD} "
                             "(ideally 50+); add good images")
    if options.policy is not None and options.policy.kind == "escape" and not any(s.is_defect for s in dataset.test):  # now, not after the fit
        raise InspectorError(f"--escape {options.policy.target:g}: calibration policy 'escape' needs defect images, and data "
                             f"{dataset.root} has no test/<type> folders; add some, or use --far instead")
    patches = min(len(paths) * (1 + len(options.augment)) * (options.input_size // options.grid_stride) ** 2, options.max_patches)
    if not options.references and _bank_size(options, patches) < 2:  # one patch is one image's: said before the feature pass
        raise InspectorError(f"--coreset {options.coreset_ratio:g}: the memory bank would keep 1 of the {patches} patches, one "
                             "training image's, which then has nothing to be scored against; give a larger --coreset "
                             f"(default {FitOptions.coreset_ratio:g}), or more training images")
    if framing is None:
        framing = _new_framing(paths, options, size, [s.path for s in dataset.test])
    views = len(paths) * (1 + len(options.augment))  # --references beyond them allocated for all (20000: 2.1 GB at 64 px)
    config = NetConfig(backbone=options.backbone, layers=tuple(options.layers), input_size=size, grid_stride=options.grid_stride,
                       sigma=options.sigma, global_weight=options.global_weight, normalize_input=options.normalize_input,
                       position_norm=options.position_norm, references=min(options.references, views), ref_k=options.ref_k,
                       ref_radius=options.ref_radius, peers=peers, peer_images=len(paths) if peers else 0,
                       peer_position=peer_position, position_map=peer_position and options.position_map,
                       neighbours=1 if options.references else options.neighbours, **framing.to_net())
    net = InspectorNet(config).eval()
    head = net.head

    # 1. features of every good image (and of its augmented views, which share its source id), written into one
    # float16 buffer: the patch embeddings are most of fit's memory (about 1 MB per image at 256 px)
    emb, row, pooled, sources, good_rgbs, descs, shapes, quality = None, 0, [], [], [], [], [], []
    bar = progress("features", len(paths))
    for idx, batch, originals, located in _each_batch(load_batches(paths, size, options.batch_size, framing=framing),
                                                      paths, size, framing, dataset.root):
        shapes += [rgb.shape[:2] for rgb in originals]
        quality.append(quality_stats(batch))
        for i, (_, weak) in zip(idx, located, strict=True):  # a part the template does not find would be learnt as good
            if weak:
                raise InspectorError(f"image {paths[i]}: {weak}; remove it from the good images, or widen --locate")
        x = net.hide(torch.from_numpy(batch))  # before any flip, which would move what is hidden
        if keep_images:
            good_rgbs.append((batch.transpose(0, 2, 3, 1) * 255.0).round().astype(np.uint8))
        for dims in [None, *(AUGMENTATIONS[a] for a in options.augment)]:
            feats = net.features(x if dims is None else x.flip(dims))
            if dims is None:
                descs.append(cell_means(feats))
            e = head.embed(feats).half()
            if emb is None:
                emb = torch.empty((len(paths) * (1 + len(options.augment)), *e.shape[1:]), dtype=torch.half)
            emb[row : row + len(e)] = e
            row += len(e)
            pooled.append(head.pool(feats))
            sources += idx
        bar.update(len(batch))
    bar.close()
    pooled_t, view_source = torch.cat(pooled), torch.tensor(sources)
    n = len(paths)
    _refuse_alike(pooled_t[_first_views(sources)], n, dataset.root, size, options.normalize_input)  # views of one image differ
    _, dim, gh, gw = emb.shape

    # 2. weigh each backbone level equally in patch distances
    scale = torch.empty(dim)
    start = 0
    for ch in net.backbone.info.channels:
        scale[start : start + ch] = 1.0 / _level_variance(emb, start, start + ch).clamp_min(1e-12).sqrt()
        start += ch
    head.level_scale = scale
    for r in range(0, len(emb), CHUNK):  # in place, a chunk at a time: a float32 copy of all of it took 4x its memory
        emb[r : r + CHUNK] = (emb[r : r + CHUNK].float() * scale.view(1, dim, 1, 1)).half()

    # 3. global Gaussian on pooled statistics
    mean, whiten = _whitening(pooled_t, options.shrinkage)
    head.g_mean, head.g_whiten = mean, whiten
    keys = head.global_key(pooled_t)

    # 4. the patch branch's normal patches: reference images, or a coreset memory bank
    if options.references:
        ref_rows = greedy_coreset(keys, min(options.references, emb.shape[0]), proj_dim=keys.shape[1], seed=options.seed)
        net.config.references = head.references = ref_rows.numel()
        # when fitting scores an image without its own views, that many fewer references remain
        net.config.ref_k = head.ref_k = max(1, min(options.ref_k, head.references - 1 - len(options.augment)))
        head.ref_emb, head.ref_key = emb[ref_rows].contiguous(), keys[ref_rows].contiguous()
        bank_source, k, n_patches = view_source[ref_rows], 0, 0
    else:
        source = view_source.repeat_interleave(gh * gw)
        keep = None
        if source.numel() > options.max_patches:
            keep = torch.randperm(source.numel(), generator=torch.Generator().manual_seed(options.seed))[: options.max_patches]
            source = source[keep]
        patches = patch_rows(emb, keep)
        n_patches = patches.shape[0]
        k = _bank_size(options, n_patches)
        bar = progress("coreset", k)
        idx = greedy_coreset(patches.float(), k, seed=options.seed, progress=bar.update)
        bar.close()
        head.set_bank(patches[idx].float())
        bank_source = source[idx]
    net.config.bank_size = k
    if not options.references and head.neighbours > k:  # more neighbours than the bank holds: the mean is over all
        net.config.neighbours = head.neighbours = k  # of it, in the graph and any export too; the manifest says so

    # 5. standardise each branch with out-of-sample scores on the good images
    first = _first_views(sources)
    first_view = emb if len(first) == len(emb) else emb[first]  # without augmentation the same rows: no copy
    first_keys = keys[first]
    del emb
    dists_t = _oos_distances(head, first_view, first_keys, bank_source, torch.arange(n), progress("calibration", n))
    _check_scored_without_itself(dists_t, torch.arange(n), paths, options, n_patches)
    patch_raw = map_maxima(head, dists_t).numpy()
    glob_raw = _oos_global(pooled_t, view_source, first, options.folds, options.shrinkage, options.seed)
    head.norm = torch.tensor([patch_raw.mean(), max(patch_raw.std(), 1e-6), glob_raw.mean(), max(glob_raw.std(), 1e-6)], dtype=torch.float32)
    peer_rows = _fit_peer_keys(head, pooled_t[first]) if head.peers else None
    pos_cells = _fit_position_norm(head, dists_t, peer_rows) if head.position_norm else None

    # 6. the same scores with each multi-capture part left out whole, for calibration (see `WithoutParts`); parts
    # by the twin rule of `eval`, on this model's own features
    owners = _part_owners(part_groups([torch.cat(level) for level in zip(*descs)]), head.peers)
    without = None
    if owners is not None:
        grouped = (torch.bincount(owners)[owners] > 1).nonzero().squeeze(1)  # the others' distances stay as they are
        d = dists_t.clone()
        d[grouped] = _oos_distances(head, first_view, first_keys, owners[bank_source], owners[grouped],
                                    progress("calibration by part", grouped.numel()), grouped)
        _check_scored_without_itself(d, owners, paths, options, n_patches)
        without = WithoutParts(grouped.numel(), *_part_excluded_cells(head, d, dists_t, owners, pooled_t[first]),
                               _oos_global(pooled_t, view_source, first, options.folds, options.shrinkage, options.seed, owners))
    return net, GoodFit(paths, first_view, dists_t, pos_cells, peer_rows, glob_raw, np.concatenate(good_rgbs) if keep_images else None,
                        k, t0, data_sha256, without, copies, image_size_summary(shapes), quality_summary(np.concatenate(quality)))


ALIKE = 1e-9  # total variance of the images' pooled features, as a share of their mean square, below which they are one picture


def _refuse_alike(pooled: torch.Tensor, n: int, root: Path, size: tuple[int, int], standardised: bool) -> None:
    """Good images that are one picture at the model's input (copies in other files or sizes; blank frames of any grey
    level, which contrast standardisation makes alike) give no variation of good parts to learn: the deepest backbone
    level did not vary over them, its scale of 1e6 overflowed the float16 patch buffer, and fit blamed --coreset for the
    NaN distances; with that avoided, every out-of-sample distance was 0 and the float noise of scoring one image alone
    failed the very images fitted on, at scores of 1e7. Refused in one line, before any of that."""
    x = pooled.double()
    if float(x.var(dim=0).sum()) <= ALIKE * float((x * x).sum(dim=1).mean()):
        blank = " (blank frames of any grey level are too: each image's contrast is standardised)" if standardised else ""
        raise InspectorError(f"data {root}: the {n} good training images are all the same picture at the model's {size[1]}x{size[0]} px "
                             f"input{blank}, so there is no variation of good parts to learn; give images of different good parts")


def _refuse_test_defects_in_training(dataset: Dataset, digests: dict[str, Any]) -> None:
    """A test defect image that is also among the good training images (the same file's bytes: a copy put there by
    mistake) is learnt as normal, and it and its like then pass; calibrated on, it pulled the threshold down to fail
    it. Refused in one line before fitting, as --labels and --add-good refuse theirs."""
    if not dataset.test or not digests:
        return
    inside = [(digests[d], s.path) for s, d in zip(dataset.test, dataset.test_digests, strict=True) if s.is_defect and d in digests]
    if inside:
        (good, defect), more = inside[0], f" ({len(inside) - 1} more like it)" if len(inside) > 1 else ""
        raise InspectorError(f"data {dataset.root}: the good training image {good} is the same file as the test defect image "
                             f"{defect}{more}; a defect among the good images is learnt as normal: remove it from the good images")


def _check_scored_without_itself(dists: torch.Tensor, owners: torch.Tensor, paths: list, options: FitOptions, patches: int) -> None:
    """Every good image must be scorable without its own patches (and its part's, `owners` [n]): a memory bank whose
    few patches (--coreset 1e-9 keeps one) all came from one image (or part) left it nothing else, its out-of-sample
    distance was infinite, and the standardisation and every score after it NaN (fit then said to export in float32).
    `patches`: how many the bank was chosen from (0: references)."""
    bad = (~torch.isfinite(dists.flatten(1))).any(dim=1).nonzero().flatten()
    if not bad.numel():
        return
    i = int(bad[0])
    whose = (f"one training image, {paths[i]}, which is" if int((owners == owners[i]).sum()) == 1
             else f"captures of one part ({paths[i]} among them), which are")
    if not patches:
        raise InspectorError(f"--references {options.references}: the reference images kept are all from {whose} then left "
                             "with nothing to be scored against; give more --references, or more training images")
    raise InspectorError(f"--coreset {options.coreset_ratio:g}: the memory bank keeps {_bank_size(options, patches)} of {patches} "
                         f"patches, all from {whose} then left with nothing to be scored against; give a larger --coreset "
                         f"(default {FitOptions.coreset_ratio:g}), or more training images")


def _bank_size(options: FitOptions, patches: int) -> int:
    """The memory bank's size that fit takes for `patches` normal patches (at least one, at most all)."""
    return min(max(1, int(round(options.coreset_ratio * patches))), patches)


def _each_batch(batches: Any, paths: list, size: tuple[int, int], framing: Framing, root: Path) -> Any:
    """load_batches' batches; where an image fails to load (a damaged body the header check cannot see), the
    images not yet loaded are all checked, and those that fail are named together (`unusable_images`)."""
    done = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except InspectorError as exc:
            problems = _load_problems(paths[done:], size, framing)
            raise (unusable_images(problems, len(paths), root) if problems else exc) from None
        done += len(batch[0])
        yield batch


def _new_framing(paths: list, options: FitOptions, size: tuple[int, int], test: Sequence[Path] = ()) -> Framing:
    """The framing `options` ask for, made from the training images `paths`; the `test` images, which calibration
    frames after the fit, are checked to hold it now."""
    # --locate: the first training image's region, and the images spread over the rest, make the template
    references = reference_paths(paths) if options.locate else []
    if options.roi is not None and not options.locate and (size0 := upright_size(paths[0])) is not None:
        Framing(options.roi).check_size(size0, str(paths[0]))  # a --roi beyond it is one line, not every image named
    framing = Framing.fitted(options.roi, options.locate, lambda: ((read_image(p), str(p)) for p in references), options.turn)
    if options.ignore:  # drawn on frames of the first image's size (without a region, each must have it: Framing.located)
        first = read_image(paths[0])
        crop(first, options.roi, str(paths[0]))  # the one-line error for a region beyond it, before the mask's
        framing = framing.with_ignore(ignore_mask(options.ignore, first.shape[:2], options.roi, size), first.shape[:2])
        if options.roi is None:
            _one_frame_size(paths, options.ignore, (first.shape[1], first.shape[0]))
    for path in test if framing.roi is not None or framing.frame is not None else ():
        # from their headers: one without the region (or of another size than --ignore's) stopped fit after fitting
        if (found := upright_size(path)) is not None:
            framing.check_size(found, str(path))
    return framing


def _one_frame_size(paths: list, ignore: tuple[str, ...], frame: tuple[int, int]) -> None:
    """--ignore without --roi is drawn on frames of the first training image's size (width, height), which every image
    must have: others are refused in one line naming the option (each was named as an image to remove or replace)."""
    other = [(p, s) for p in paths[1:] if (s := upright_size(p)) is not None and s != frame]
    if other:
        (path, (w, h)), rest = other[0], f", as are {len(other) - 1} more" if len(other) > 1 else ""
        raise InspectorError(f"--ignore {' '.join(ignore)}: {path} is {w}x{h} px, but the model's --ignore regions are drawn on "
                             f"{frame[0]}x{frame[1]} px images (the first training image's size){rest}; without a --roi every "
                             "image must have that size: give images of one size, or a --roi inside every image")


def image_size_summary(shapes: list[tuple[int, int]]) -> dict:
    """(height, width) of each training image -> {"min": [w, h], "max": [w, h], "aspect": [lowest, highest w/h]}."""
    w, h = np.array([s[1] for s in shapes]), np.array([s[0] for s in shapes])
    aspect = w / h
    return {"min": [int(w.min()), int(h.min())], "max": [int(w.max()), int(h.max())],
            "aspect": [round(float(aspect.min()), 4), round(float(aspect.max()), 4)]}


def bank_maps(head: AnomalyHead, raw_cells: torch.Tensor | None, pos_cells: torch.Tensor | None,
              rows: Any = slice(None)) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The patch branch's map and score (`standardise_bank`) of the good images `rows`, from their cells (`GoodFit`)."""
    raw = None if head.position_map else head.to_map(raw_cells[rows])
    return head.standardise_bank(raw, None if pos_cells is None else head.to_map(pos_cells[rows]))


def _fused_good(head: AnomalyHead, raw_cells: torch.Tensor | None, pos_cells: torch.Tensor | None, glob_raw: np.ndarray,
                seg_cells: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The good images' fused scores [n] and the maxima of their maps [n] (`head.fuse`), CHUNK maps at a time."""
    glob = torch.from_numpy(glob_raw).float()
    scores, maxima = [], []
    for s in range(0, len(glob), CHUNK):
        rows = slice(s, s + CHUNK)
        seg = None if seg_cells is None else head.to_map(seg_cells[rows])
        score, amap = head.fuse(*bank_maps(head, raw_cells, pos_cells, rows), glob[rows], seg)
        scores.append(score)
        maxima.append(amap.flatten(1).amax(dim=1))
    return torch.cat(scores), torch.cat(maxima)


@torch.no_grad()
def finish_fit(net: InspectorNet, good: GoodFit, dataset: Dataset, options: FitOptions,
               progress: BarFactory = silent) -> tuple[InspectorNet, FitReport]:
    """Learn from generated defects (if asked), then calibrate thresholds and write the report."""
    head, seg_cells, learning = net.head, None, None
    if options.defects.enabled:
        learning = learn_defects(net, good.rgbs, good.first_view, lambda rows: bank_maps(head, good.raw_cells, good.pos_cells, rows)[0],
                                 options.defects, options.seed, progress)
        seg_cells = torch.cat([head.seg_cells(good.first_view[s : s + 16].float()) for s in range(0, len(good.paths), 16)])
    good_scores, map_max = _fused_good(head, good.raw_cells, good.pos_cells, good.glob_raw, seg_cells)
    if head.peers:
        good_scores = good_scores - _fit_peer_scores(head, good.peer_rows, good_scores)
    if good.without_parts is not None:  # calibrate on the scores that stand for new parts
        w = good.without_parts
        good_scores, map_max = _fused_good(head, w.raw_cells, w.pos_cells, w.glob_raw, seg_cells)
        if head.peers:
            good_scores = good_scores - head.peer_offset(w.peer_rows)
    good_scores = good_scores.numpy()
    # a region is where the map exceeds what 95% of good parts reach anywhere
    pixel_thr = float(np.quantile(map_max.numpy(), 0.95))
    fit_seconds = time.perf_counter() - good.started

    # 7. calibrate on held-out test images where the data has them
    test_good, test_defect, pixel_source = np.array([]), np.array([]), "good images (95th percentile of map maxima)"
    started = time.perf_counter()
    if dataset.test:
        from model.evaluate import score_samples

        scored = score_samples(net, dataset.test, progress=progress, with_masks=True, batch_size=16)
        labels = np.array([s.is_defect for s in dataset.test])
        test_good, test_defect = scored.scores[~labels], scored.scores[labels]
        pixels = scored.pixels
        if pixels is not None:
            pixel_thr = f1_max(pixels[0].ravel(), pixels[1].ravel())[1]
            pixel_source = "test masks (pixel F1-max)"
    good_all = np.concatenate([good_scores, test_good])  # training first: eval reads the first n_images as those
    policy = options.policy or (Policy("escape", 0.01) if test_defect.size else Policy("far", 0.01))
    source_desc = f"{good_scores.size} good training images (out-of-sample"
    source_desc += f"; {good.without_parts.images} of them from parts captured more than once, each scored without its part's other captures)" if good.without_parts else ")"
    if dataset.test:
        source_desc += f" + {test_good.size} good and {test_defect.size} defect test images"
    cal = calibrate(good_all, test_defect, policy, source_desc)

    report = FitReport(
        # the values used, where the data capped them (neighbours: the bank's size; peers: the other training images;
        # references and the references compared: the training images)
        options={**asdict(options), "policy": asdict(policy), "layers": list(net.config.layers), "neighbours": net.config.neighbours,
                 "peers": net.config.peers, "references": net.config.references, "ref_k": net.config.ref_k},
        training={
            "root": str(dataset.root.resolve()),  # absolute: INT8 export and bench find it from any folder
            "n_images": len(good.paths),
            **({"added_good": added} if (added := _added_good(good.paths, dataset.root)) else {}),
            **({"copies_left_out": [{"file": c, "copy_of": o} for c, o in good.copies]} if good.copies else {}),
            "data_sha256": good.data_sha256,
            **({"image_size": good.image_size} if good.image_size else {}),
            **({"image_quality": good.image_quality} if good.image_quality else {}),
            "fit_seconds": round(fit_seconds, 2),
            **({"calibration_seconds": round(time.perf_counter() - started, 2)} if dataset.test else {}),
            "bank_size": good.bank_size,
            "patches": int(len(good.paths) * good.first_view.shape[2] * good.first_view.shape[3]),
            **({"generated_defects": learning} if learning else {}),
        },
        calibration={**cal.summary(), "pixel_threshold_source": pixel_source,  # the test set, so eval knows it by content
                     **({"test_sha256": dataset.test_sha256, "test_images": [d[:16] for d in dataset.test_digests]}
                        if dataset.test else {}),
                     **({"masks_sha256": dataset.masks_sha256} if pixel_source.startswith("test masks") else {})},
        thresholds={"image": cal.threshold, "pixel": float(pixel_thr)},
        scores={"good": cal.good, "defect": cal.defect},
    )
    return net, report
