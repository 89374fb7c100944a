"""How the workflow names a subspace: `{method}-d{dim}`, or `{method}-mean-d{dim}` for one whose z = 0 is the
mean source solution (offset "mean"; the paper's offset "init" goes unmarked): the folder
results/subspace/{name}/ and the `space` column of every table. One type formats and parses it, so the two can
never disagree."""
from __future__ import annotations

import re
from dataclasses import dataclass

FORMAT = "{method}-d{dim}"
PATTERN = r"[a-z]+(-mean)?-d\d+"  # the Snakemake wildcard constraint of {space}
CONTROL = "random"  # the method name of the random-subspace control of a found subspace


@dataclass(frozen=True, order=True)
class SpaceName:
    method: str
    dim: int
    offset: str = "init"

    def __str__(self) -> str:
        return FORMAT.format(method=self.family, dim=self.dim)

    @property
    def family(self) -> str:
        """The name without its dimension: the method, and the offset unless it is the paper's (svd, svd-mean)."""
        return self.method if self.offset == "init" else f"{self.method}-{self.offset}"

    @classmethod
    def parse(cls, text: str) -> SpaceName:
        if not re.fullmatch(PATTERN, text):
            raise ValueError(f"{text!r} is not a subspace name (method-d<dim> or method-mean-d<dim>, e.g. svd-d4)")
        method, dim = text.rsplit("-d", 1)
        method, mean, _ = method.partition("-mean")
        return cls(method, int(dim), "mean" if mean else "init")

    @property
    def is_control(self) -> bool:
        return self.method == CONTROL

    def control(self) -> SpaceName:
        """The random-subspace control of this (found) subspace: same dimension and offset."""
        return SpaceName(CONTROL, self.dim, self.offset)

