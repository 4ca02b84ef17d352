"""Twin detection at its edges (model/overlap.py), on descriptors built by hand: distances worked out on paper,
the rank and cell-grid the module documents, and sets too small to judge or empty."""

from __future__ import annotations

import torch

from model import overlap
from model.overlap import cell_means, part_groups, twins

C = 16  # channels: more than the number of images anywhere here, so that N and C are never confused


def parts(*rows: dict[int, float]) -> list[torch.Tensor]:
    """One level of [N, C, 1, 1] descriptors: each row a few non-zero channels."""
    t = torch.zeros(len(rows), C, 1, 1)
    for i, row in enumerate(rows):
        for ch, v in row.items():
            t[i, ch] = v
    return [t]


def test_the_descriptor_is_an_8_by_8_grid_of_cell_means():
    fmap = torch.arange(256.0).reshape(1, 1, 16, 16)
    cells = cell_means([fmap])[0]
    assert cells.shape == (1, 1, 8, 8)
    assert cells[0, 0, 0, 0].item() == (0 + 1 + 16 + 17) / 4  # the top-left 2 x 2 block


def test_distances_are_on_the_training_sets_scale_level_by_level():
    # level 1: 0 and 2 (variance 2), level 2: 0 and 200 (variance 20,000): each scaled to unit variance,
    # the two images differ by sqrt(2) on each level, sqrt(2 + 2) = 2 in all
    train = [torch.tensor([0.0, 2.0]).reshape(2, 1, 1, 1), torch.tensor([0.0, 200.0]).reshape(2, 1, 1, 1)]
    d = overlap._distances(train, train)
    assert torch.allclose(d, torch.tensor([[0.0, 2.0], [2.0, 0.0]]), atol=1e-5)
    halfway = [torch.tensor([1.0]).reshape(1, 1, 1, 1), torch.tensor([100.0]).reshape(1, 1, 1, 1)]
    # halfway: 1 / sqrt(2) from each image on each level, sqrt(1/2 + 1/2) = 1
    assert torch.allclose(overlap._distances(train, halfway), torch.tensor([[1.0, 1.0]]), atol=1e-5)


def test_training_images_that_do_not_vary_give_finite_distances():
    same = [torch.ones(2, 1, 1, 1)]
    assert overlap._distances(same, [torch.ones(1, 1, 1, 1)]).tolist() == [[0.0, 0.0]]


def test_no_images_to_compare_give_an_empty_row_per_training_image():
    train = parts(*({i: 10.0} for i in range(5)))
    assert overlap._distances(train, [t[:0] for t in train]).shape == (0, 5)


def test_four_training_images_are_enough_and_three_are_not():
    train = parts({0: 10.0}, {1: 10.0}, {2: 10.0}, {3: 10.0})
    test = parts({0: 10.0, 5: 0.1}, {6: 10.0})  # a second capture of image 0, and a new part
    assert twins(train, test).tolist() == [0, -1]
    assert twins([t[:3] for t in train], test).tolist() == [-1, -1]


def test_three_captures_of_a_part_in_training_still_make_a_twin_and_four_do_not():
    others = [{i: 10.0} for i in range(7)]
    captures = [{7: 10.0, 8 + k: 0.1} for k in range(4)]  # one part, four captures
    test = parts({7: 10.0, 12: 0.1})
    assert twins(parts(*others, *captures[:3]), test)[0] in (7, 8, 9)
    assert twins(parts(*others[:6], *captures), test).tolist() == [-1]


def test_four_images_or_fewer_are_each_their_own_part():
    assert part_groups(parts({0: 10.0}, {1: 10.0}, {2: 10.0}, {0: 10.0, 3: 0.1})).tolist() == [0, 1, 2, 3]
    groups = part_groups(parts({0: 10.0}, {1: 10.0}, {2: 10.0}, {3: 10.0}, {4: 10.0}, {0: 10.0, 5: 0.1}))
    assert len(groups) == 6 and groups[0] == groups[5] and len(set(groups[:5].tolist())) == 5


def test_distances_one_row_at_a_time_cover_every_image(monkeypatch):
    # six images against three, in blocks of one row (more rows than channels or cells): every row is computed
    train_pts = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    other_pts = torch.tensor([[1.0, 1.0], [3.0, 0.0], [0.0, 0.0], [2.0, 2.0], [0.0, 5.0], [4.0, 4.0]])
    # each channel's variance over the training images is 4/3: the scale is 1 / sqrt(8/3)
    expected = torch.cdist(other_pts, train_pts) * (3.0 / 8.0) ** 0.5
    monkeypatch.setattr(overlap, "BLOCK_FLOATS", 1)
    d = overlap._distances([train_pts.reshape(3, 2, 1, 1)], [other_pts.reshape(6, 2, 1, 1)])
    assert d.shape == (6, 3) and torch.allclose(d, expected, atol=1e-5)


class _Probe(torch.nn.Module):
    """A one-level backbone that keeps the input sizes it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.seen.append(tuple(x.shape))
        return [x]


def test_descriptors_see_every_image_at_256_px_and_report_progress_to_the_end(tmp_path):
    import cv2

    from tests.synthetic import good_image

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"p{i}.png")
        cv2.imwrite(str(paths[-1]), good_image(i))
    bars: list[list] = []

    def progress(desc: str, total: int):
        bars.append([desc, total, 0, False])

        class Bar:
            def update(self, n: int = 1) -> None:
                bars[-1][2] += n

            def close(self) -> None:
                bars[-1][3] = True
        return Bar()

    probe = _Probe()
    levels = overlap.descriptors(paths, probe, progress)
    assert {s[2:] for s in probe.seen} == {(256, 256)} and sum(s[0] for s in probe.seen) == 3
    assert len(levels) == 1 and levels[0].shape[0] == 3 and levels[0].shape[2:] == (8, 8)
    assert bars == [["overlap", 3, 3, True]]


def test_find_parts_groups_a_relit_capture_with_its_part_through_the_backbone(tmp_path):
    import cv2
    import numpy as np

    from model.overlap import find_parts
    from tests.synthetic import good_image

    for i in range(8):
        cv2.imwrite(str(tmp_path / f"p{i}.png"), good_image(i))
    rng = np.random.default_rng(0)  # another capture of part 3: other gain, offset and noise
    relit = np.clip(good_image(3).astype(np.float32) * 0.8 + 20 + rng.normal(0, 3, (96, 96, 1)), 0, 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "p8.png"), relit)
    ids = find_parts([tmp_path / f"p{i}.png" for i in range(9)])
    assert len(ids) == 9 and ids[3] == ids[8] and len(set(ids.tolist())) == 8


def test_four_captures_of_one_part_are_one_part_among_others():
    # each capture's three nearest others are the other captures, far nearer than its fourth (another part)
    captures = [{7: 10.0, 8 + k: 0.1} for k in range(4)]
    groups = part_groups(parts({0: 10.0}, {1: 10.0}, {2: 10.0}, *captures)).tolist()
    assert len(set(groups[3:])) == 1 and len(set(groups)) == 4
