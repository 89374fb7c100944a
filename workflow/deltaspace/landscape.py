"""The landscape of a subspace: a square grid on the plane through the codes that several DETs found."""
from __future__ import annotations

import pandas as pd
import torch

from .subspace import SubspaceError


def plane(solutions: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Origin (dim,) and two orthonormal axes (2 x dim) of the plane through 2 or 3 codes (rows).

    Three codes span their own plane. Two span a line, completed by the subspace's first principal direction
    (the first code coordinate); degenerate directions (equal or collinear codes) fall back to the next
    principal direction.
    """
    if dim < 2:
        raise SubspaceError(f"a landscape needs a plane: the subspace has {dim} dimension(s)")
    if solutions.dim() != 2 or solutions.shape[0] not in (2, 3) or solutions.shape[1] != dim:
        raise SubspaceError(f"a landscape needs 2 or 3 codes of {dim} entries; got shape {tuple(solutions.shape)}")
    solutions = solutions.double()
    candidates = [solutions[i] - solutions[0] for i in range(1, len(solutions))] + list(torch.eye(dim).double())
    scale = max(float(solutions.norm(dim=1).max()), 1.0)
    axes = []
    for c in candidates:
        for axis in axes:
            c = c - (c @ axis) * axis
        if c.norm() > 1e-6 * scale:
            axes.append(c / c.norm())
        if len(axes) == 2:
            break
    return solutions.mean(0).float(), torch.stack(axes).float()


def square_grid(coords: torch.Tensor, points: int, margin: float) -> tuple[list[float], list[float]]:
    """Axis values of a square grid centred on the solutions' plane coordinates (rows of (a, b))."""
    low, high = coords.min(0).values, coords.max(0).values
    span = float((high - low).max()) or 1.0
    half = span * (0.5 + margin)
    centre = (low + high) / 2
    values = [torch.linspace(float(c) - half, float(c) + half, points).tolist() for c in centre]
    return values[0], values[1]


def shares(frame: pd.DataFrame, threshold: float, reference: dict[str, float] | None = None,
           metric: str = "accuracy", floor: dict[str, float] | None = None) -> float:
    """Share of grid points where every DET reaches floor + threshold x (reference - floor): with a floor of
    zero-shot and a reference of the original-space run, the points where every DET closes at least
    `threshold` of its gap. Defaults: reference each DET's best on the grid, floor 0."""
    values = frame[frame.metric == metric].pivot_table(index=["a", "b"], columns="det", values="value")
    ref = values.max() if reference is None else pd.Series(reference)[values.columns]
    low = 0.0 if floor is None else pd.Series(floor)[values.columns]
    return float((values >= low + threshold * (ref - low)).all(axis=1).mean())
