"""The landscape's plane through two or three codes, its square grid and the share of the grid every DET reaches,
each on hand-built cases with hand-computed answers."""
from __future__ import annotations

import re

import pandas as pd
import pytest
import torch

from deltaspace.landscape import plane, square_grid, shares
from deltaspace.subspace import SubspaceError


def coordinates(codes: torch.Tensor, origin: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """(a, b) of each code, as the landscape stage computes them."""
    return (codes - origin) @ axes.T


def assert_orthonormal(axes: torch.Tensor, dim: int) -> None:
    assert axes.shape == (2, dim)
    assert torch.allclose(axes @ axes.T, torch.eye(2), atol=1e-6)


# -- plane ------------------------------------------------------------------------------------------------------

def test_three_codes_span_their_own_plane_and_lie_in_it():
    c = torch.tensor([1.0, -1.0, 2.0, 0.5])
    codes = torch.stack([c, c + torch.tensor([2.0, 0.0, 0.0, 0.0]), c + torch.tensor([5.0, 0.0, 3.0, 0.0])])
    origin, axes = plane(codes, 4)
    assert torch.allclose(origin, c + torch.tensor([7 / 3, 0.0, 1.0, 0.0]), atol=1e-6)  # the mean
    # first axis along the first difference (e0), second the rest of the second difference: (5, 0, 3, 0) - 5 e0
    assert torch.allclose(axes, torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]), atol=1e-6)
    coords = coordinates(codes, origin, axes)
    assert torch.allclose(coords, torch.tensor([[-7 / 3, -1.0], [-1 / 3, -1.0], [8 / 3, 2.0]]), atol=1e-5)
    assert torch.allclose(origin + coords @ axes, codes, atol=1e-5)


def test_three_codes_in_general_position_are_rebuilt_from_their_plane_coordinates():
    codes = torch.tensor([[1.0, 2.0, 0.0, -1.0, 0.3], [3.0, 2.0, 1.0, 0.0, -0.7], [0.0, -2.0, 4.0, 2.0, 1.1]])
    origin, axes = plane(codes, 5)
    assert torch.allclose(origin, torch.tensor([4 / 3, 2 / 3, 5 / 3, 1 / 3, 0.7 / 3]), atol=1e-6)
    assert_orthonormal(axes, 5)
    coords = coordinates(codes, origin, axes)
    assert torch.allclose(origin + coords @ axes, codes, atol=1e-5)  # each code is origin + a * u + b * v
    first = codes[1] - codes[0]
    assert torch.allclose(axes[0], first / first.norm(), atol=1e-6)


def test_two_codes_lie_on_the_first_axis_completed_by_the_first_code_coordinate():
    codes = torch.tensor([[0.0, 1.0, 2.0], [0.0, 4.0, 6.0]])  # difference (0, 3, 4): orthogonal to e0
    origin, axes = plane(codes, 3)
    assert torch.allclose(origin, torch.tensor([0.0, 2.5, 4.0]))
    assert_orthonormal(axes, 3)
    assert torch.allclose(axes[0], torch.tensor([0.0, 0.6, 0.8]), atol=1e-6)  # (0, 3, 4) / 5
    assert torch.allclose(axes[1], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)  # e0, already orthogonal
    coords = coordinates(codes, origin, axes)
    assert torch.allclose(coords, torch.tensor([[-2.5, 0.0], [2.5, 0.0]]), atol=1e-5)
    assert torch.allclose(origin + coords @ axes, codes, atol=1e-5)


def test_two_codes_along_the_first_coordinate_take_the_next_one():
    codes = torch.tensor([[1.0, 5.0, 5.0], [3.0, 5.0, 5.0]])  # difference along e0: e0 adds nothing
    origin, axes = plane(codes, 3)
    assert_orthonormal(axes, 3)
    assert torch.allclose(axes, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), atol=1e-6)
    assert torch.allclose(origin + coordinates(codes, origin, axes) @ axes, codes, atol=1e-5)


def test_two_codes_in_general_position_get_e0_less_its_part_along_the_difference():
    codes = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    origin, axes = plane(codes, 2)
    s = 2 ** -0.5
    assert torch.allclose(origin, torch.tensor([0.5, 0.5]))
    assert torch.allclose(axes, torch.tensor([[s, s], [s, -s]]), atol=1e-6)  # e0 - (e0 . u) u, normalised
    assert torch.allclose(coordinates(codes, origin, axes), torch.tensor([[-s, 0.0], [s, 0.0]]), atol=1e-6)


def test_collinear_codes_fall_back_to_the_next_principal_direction():
    # three codes on a line along e1: the second difference adds nothing, e0 completes the plane
    on_e1 = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 3.0, 0.0]])
    origin, axes = plane(on_e1, 3)
    assert torch.allclose(origin, torch.tensor([1.0, 4 / 3, 0.0]), atol=1e-6)
    assert torch.allclose(axes, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), atol=1e-6)
    assert torch.allclose(origin + coordinates(on_e1, origin, axes) @ axes, on_e1, atol=1e-5)

    # on a line along e0: neither the second difference nor e0 adds anything, e1 completes the plane
    on_e0 = torch.tensor([[0.0, 2.0, 2.0], [-2.0, 2.0, 2.0], [4.0, 2.0, 2.0]])
    origin, axes = plane(on_e0, 3)
    assert_orthonormal(axes, 3)
    assert torch.allclose(axes, torch.tensor([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), atol=1e-6)
    coords = coordinates(on_e0, origin, axes)
    assert torch.allclose(coords[:, 1], torch.zeros(3), atol=1e-6)  # all on the first axis
    assert torch.allclose(origin + coords @ axes, on_e0, atol=1e-5)


def test_equal_codes_fall_back_to_the_first_two_code_coordinates():
    same = torch.tensor([[1.0, -2.0, 3.0, 0.5]] * 2)
    origin, axes = plane(same, 4)
    assert torch.allclose(origin, same[0])
    assert torch.allclose(axes, torch.eye(4)[:2])
    assert torch.allclose(coordinates(same, origin, axes), torch.zeros(2, 2))

    origin, axes = plane(torch.tensor([[1.0, -2.0, 3.0, 0.5]] * 3), 4)
    assert torch.allclose(axes, torch.eye(4)[:2])


def test_a_plane_needs_two_dimensions_and_two_or_three_codes_of_the_right_width():
    with pytest.raises(SubspaceError, match=r"needs a plane: the subspace has 1 dimension\(s\)"):
        plane(torch.zeros(2, 1), 1)
    with pytest.raises(SubspaceError, match=r"needs a plane: the subspace has 0 dimension\(s\)"):
        plane(torch.zeros(2, 0), 0)
    for shape in [(1, 3), (4, 3), (2, 4), (3, 2), (3,), (2, 3, 1)]:
        with pytest.raises(SubspaceError, match=re.escape(f"needs 2 or 3 codes of 3 entries; got shape {shape}")):
            plane(torch.zeros(shape), 3)
    origin, axes = plane(torch.zeros(2, 2), 2)  # the smallest plane is fine
    assert torch.equal(axes, torch.eye(2))


# -- square_grid -------------------------------------------------------------------------------------------------

def test_the_grid_is_centred_square_and_wider_than_the_codes_by_the_margin():
    # a spans 0..4, b spans -1..1: span 4 (the wider), centre (2, 0), half-width 4 * (0.5 + 0.25) = 3
    coords = torch.tensor([[0.0, 0.0], [4.0, 1.0], [2.0, -1.0]])
    a, b = square_grid(coords, 3, 0.25)
    assert a == pytest.approx([-1.0, 2.0, 5.0], abs=1e-6)
    assert b == pytest.approx([-3.0, 0.0, 3.0], abs=1e-6)  # as wide as a although b spans half as much
    a, b = square_grid(coords, 5, 0.0)
    assert a == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0], abs=1e-6)
    assert b == pytest.approx([-2.0, -1.0, 0.0, 1.0, 2.0], abs=1e-6)
    # b the wider: span 6, centre (1, 3), half-width 6 * 0.6 = 3.6
    a, b = square_grid(torch.tensor([[0.0, 0.0], [2.0, 6.0]]), 3, 0.1)
    assert a == pytest.approx([-2.6, 1.0, 4.6], abs=1e-6)
    assert b == pytest.approx([-0.6, 3.0, 6.6], abs=1e-6)


def test_a_grid_around_one_point_has_span_one():
    a, b = square_grid(torch.tensor([[1.0, -2.0]]), 3, 0.5)  # half-width 1 * (0.5 + 0.5) = 1
    assert a == pytest.approx([0.0, 1.0, 2.0], abs=1e-6)
    assert b == pytest.approx([-3.0, -2.0, -1.0], abs=1e-6)
    a, b = square_grid(torch.tensor([[1.0, -2.0], [1.0, -2.0]]), 2, 0.0)
    assert a == pytest.approx([0.5, 1.5], abs=1e-6)
    assert b == pytest.approx([-2.5, -1.5], abs=1e-6)


# -- shares ------------------------------------------------------------------------------------------------------

# accuracy on a 2 x 2 grid (exact binary fractions, so that threshold x best is exact)
#              (0, 0)  (0, 1)  (1, 0)  (1, 1)
#   lora        1.0     0.75    0.5     0.25     best 1.0
#   bitfit      0.5     0.25    0.5     0.5      best 0.5
LORA = {(0.0, 0.0): 1.0, (0.0, 1.0): 0.75, (1.0, 0.0): 0.5, (1.0, 1.0): 0.25}
BITFIT = {(0.0, 0.0): 0.5, (0.0, 1.0): 0.25, (1.0, 0.0): 0.5, (1.0, 1.0): 0.5}


def long_frame(dets: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for det, values in dets.items():
        for (a, b), value in values.items():
            rows.append({"a": a, "b": b, "det": det, "metric": "accuracy", "value": value})
            rows.append({"a": a, "b": b, "det": det, "metric": "f1", "value": 1.0 - value})  # not counted
    return pd.DataFrame(rows)


def test_share_of_the_grid_where_every_det_reaches_threshold_times_its_best():
    frame = long_frame({"lora": LORA, "bitfit": BITFIT})
    # 0.75: lora >= 0.75 at (0,0), (0,1); bitfit >= 0.375 at (0,0), (1,0), (1,1): both only at (0,0)
    assert shares(frame, 0.75) == 0.25
    # 0.5: lora >= 0.5 at (0,0), (0,1), (1,0); bitfit >= 0.25 everywhere
    assert shares(frame, 0.5) == 0.75
    assert shares(frame, 0.25) == 1.0  # threshold x best is reached, not exceeded: 0.25 >= 0.25
    assert shares(frame, 1.0) == 0.25  # both at their best only at (0,0)
    # f1 = 1 - accuracy: lora (best 0.75) >= 0.375 at (1,0), (1,1); bitfit (best 0.75) everywhere
    assert shares(frame, 0.5, metric="f1") == 0.5


def test_a_point_where_one_det_falls_short_does_not_count():
    # lora alone reaches 0.75 x its best at (0,0) and (0,1); bitfit falls short at (0,1) (0.25 < 0.375)
    assert shares(long_frame({"lora": LORA}), 0.75) == 0.5
    assert shares(long_frame({"bitfit": BITFIT}), 0.75) == 0.75
    assert shares(long_frame({"lora": LORA, "bitfit": BITFIT}), 0.75) == 0.25


def test_share_against_a_given_reference():
    frame = long_frame({"lora": LORA, "bitfit": BITFIT})
    # 0.75 x 0.5 = 0.375 for both: lora at (0,0), (0,1), (1,0); bitfit at (0,0), (1,0), (1,1): both at 2 of 4
    assert shares(frame, 0.75, {"bitfit": 0.5, "lora": 0.5}) == 0.5
    # lora needs 0.9 x 1.0 (only (0,0)), bitfit 0.9 x 0.5 (3 points); a DET not on the grid is ignored
    assert shares(frame, 0.9, {"lora": 1.0, "bitfit": 0.5, "prompt": 0.1}) == 0.25
    assert shares(frame, 0.9, {"lora": 2.0, "bitfit": 0.5}) == 0.0  # lora never reaches 1.8
    assert shares(frame, 1.0, {"lora": 0.25, "bitfit": 0.25}) == 1.0  # against their best: 0.25
