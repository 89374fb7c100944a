"""How the workflow names a subspace: `{method}-d{dim}`, the folder results/subspace/{name}/ and the
`space` column of every table. One type formats and parses it, so the two can never disagree."""
from __future__ import annotations

import re
from dataclasses import dataclass

FORMAT = "{method}-d{dim}"
PATTERN = r"[a-z]+-d\d+"  # the Snakemake wildcard constraint of {space}


@dataclass(frozen=True, order=True)
class SpaceName:
    method: str
    dim: int

    def __str__(self) -> str:
        return FORMAT.format(method=self.method, dim=self.dim)

    @classmethod
    def parse(cls, text: str) -> SpaceName:
        if not re.fullmatch(PATTERN, text):
            raise ValueError(f"{text!r} is not a subspace name (method-d<dim>, e.g. svd-d4)")
        method, dim = text.rsplit("-d", 1)
        return cls(method, int(dim))


def with_dim_wildcard(method: str) -> str:
    """Every subspace name of a method, with Snakemake's {dim} wildcard in place of the dimension."""
    return FORMAT.format(method=method, dim="{dim}")
