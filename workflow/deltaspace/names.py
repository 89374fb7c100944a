"""How the workflow names a subspace: `{method}-d{dim}`, or `{method}-mean-d{dim}` for one whose z = 0 is the
mean source solution (offset "mean"; the paper's offset "init" goes unmarked), and `-f{fold}` after it for the
subspace of one fold of unseen tasks (subspace.folds): the folder results/subspace/{name}/. The `space` column
of every table names it without its fold, so the folds' results pool. One type formats and parses it, so the
two can never disagree."""
from __future__ import annotations

import re
from dataclasses import dataclass

FORMAT = "{method}-d{dim}"
PATTERN = r"[a-z]+(-mean)?-d\d+(-f\d+)?"  # the Snakemake wildcard constraint of {space}
CONTROL = "random"  # the method name of the random-subspace control of a found subspace


@dataclass(frozen=True, order=True)
class SpaceName:
    method: str
    dim: int
    offset: str = "init"
    fold: int | None = None

    def __str__(self) -> str:
        name = FORMAT.format(method=self.family, dim=self.dim)
        return name if self.fold is None else f"{name}-f{self.fold}"

    @property
    def pooled(self) -> SpaceName:
        """The name without its fold: what the tables call the subspaces of every fold together."""
        return SpaceName(self.method, self.dim, self.offset)

    def in_fold(self, fold: int | None) -> SpaceName:
        return SpaceName(self.method, self.dim, self.offset, fold)

    @property
    def family(self) -> str:
        """The name without its dimension: the method, and the offset unless it is the paper's (svd, svd-mean)."""
        return self.method if self.offset == "init" else f"{self.method}-{self.offset}"

    @classmethod
    def parse(cls, text: str) -> SpaceName:
        if not re.fullmatch(PATTERN, text):
            raise ValueError(f"{text!r} is not a subspace name (method-d<dim> or method-mean-d<dim>, and -f<fold> "
                             "after it for a fold's, e.g. svd-d4 or svd-d4-f0)")
        text, _, fold = text.partition("-f")
        method, dim = text.rsplit("-d", 1)
        method, mean, _ = method.partition("-mean")
        return cls(method, int(dim), "mean" if mean else "init", int(fold) if fold else None)

    @property
    def is_control(self) -> bool:
        return self.method == CONTROL

    def control(self) -> SpaceName:
        """The random-subspace control of this (found) subspace: same dimension, offset and fold."""
        return SpaceName(CONTROL, self.dim, self.offset, self.fold)

