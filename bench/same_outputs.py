"""Do two results/ folders hold the same outputs? Every safetensors file (its tensors bit for bit, its header
but the provenance) and every Parquet file (its table, its schema and metadata but the provenance) of the
first must be in the second, and the same. For a restructuring that must not change what the stages compute:

    .venv/bin/python bench/same_outputs.py RESULTS_BEFORE RESULTS_AFTER

Exits 1 and lists the files that differ or are missing; logs, plots and Markdown are not compared (they hold
clock readings or provenance as text)."""
from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from deltaspace.io import PROVENANCE, load_tensors  # noqa: E402

PARQUET_KEY = b"deltaspace." + PROVENANCE.encode()


def same_tensors(a: Path, b: Path) -> str | None:
    (ta, ma), (tb, mb) = load_tensors(a), load_tensors(b)
    ma.pop(PROVENANCE, None), mb.pop(PROVENANCE, None)
    if ma != mb:
        keys = sorted(k for k in ma.keys() | mb.keys() if ma.get(k) != mb.get(k))
        return f"header differs at {keys}"
    if ta.keys() != tb.keys():
        return f"tensor names differ: {sorted(ta.keys() ^ tb.keys())}"
    differ = [k for k in ta if ta[k].dtype != tb[k].dtype or not torch.equal(ta[k], tb[k])]
    return f"tensors differ: {differ}" if differ else None


def same_table(a: Path, b: Path) -> str | None:
    ta, tb = pq.read_table(a), pq.read_table(b)
    meta = [{k: v for k, v in (t.schema.metadata or {}).items() if k != PARQUET_KEY} for t in (ta, tb)]
    if meta[0] != meta[1]:
        return "schema metadata differs"
    plain = [t.replace_schema_metadata(None) for t in (ta, tb)]
    return None if plain[0].equals(plain[1]) else "table differs"


def compare(before: Path, after: Path) -> list[str]:
    problems, count = [], 0
    for a in sorted(before.rglob("*")):
        check = {".safetensors": same_tensors, ".parquet": same_table}.get(a.suffix)
        if check is None or not a.is_file():
            continue
        count += 1
        b = after / a.relative_to(before)
        why = "missing" if not b.is_file() else check(a, b)
        if why:
            problems.append(f"{a.relative_to(before)}: {why}")
    print(f"{count} safetensors and Parquet files compared, {len(problems)} differ")
    return problems


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    found = compare(Path(sys.argv[1]), Path(sys.argv[2]))
    print("\n".join(found))
    sys.exit(1 if found else 0)
