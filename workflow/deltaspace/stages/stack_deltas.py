"""Stage stack_deltas: one DET's deltas over tasks and seeds as the rows of one float32 matrix.

Deliberately free of transformers and peft: reading tensors back needs only their recorded layout.
"""
from __future__ import annotations

import pandas as pd
import torch

from ..delta import INIT, TRAINED, Layout
from ..io import PROVENANCE, ArtifactError, load_table, load_tensors, save_table, save_tensors


def read_delta(path) -> tuple[Layout, torch.Tensor, torch.Tensor, dict]:
    """(layout, trained vector, initial vector, metadata) of one delta.safetensors."""
    tensors, meta = load_tensors(path)
    if "layout" not in meta:
        raise ArtifactError(f"{path}: no layout in the header; not a train_det output")
    layout = Layout.from_json(meta["layout"])
    trained = layout.flatten({n: tensors[TRAINED + n] for n in layout.names})
    init = layout.flatten({n: tensors[INIT + n] for n in layout.names})
    return layout, trained, init, meta


def _same_run(path, meta: dict, first_path, first: dict) -> None:
    """Refuse a delta whose layout, backbone or DET config (as its header records them) differs from the
    first's; warn where the package versions differ (same settings, but maybe not the same numbers)."""
    differs = [what for what, key in (("layout", "layout"), ("backbone", "backbone"), ("DET config", "det_config"))
               if meta[key] != first[key]]
    if differs:
        verb = "differs" if len(differs) == 1 else "differ"
        raise ArtifactError(f"{path}: its {' and '.join(differs)} {verb} from those of {first_path}; the deltas of one "
                            "stack must come from one backbone and one DET config: rerun its train_det job")
    versions = meta.get(PROVENANCE, {}).get("versions"), first.get(PROVENANCE, {}).get("versions")
    if versions[0] != versions[1]:
        print(f"warning: {path} was made with {versions[0]}, {first_path} with {versions[1]}")


def stack_deltas(*, det_name: str, deltas: list, metrics: list, stacked_path, index_path) -> None:
    """Stack trained-minus-initial vectors of one DET, one row per (task, seed), in the order given."""
    rows, inits, index, layout, first = [], [], [], None, None
    for row, (delta_path, metrics_path) in enumerate(zip(deltas, metrics)):
        this, trained, init, meta = read_delta(delta_path)
        if layout is None:
            layout, first = this, meta
        else:
            _same_run(delta_path, meta, deltas[0], first)
        if not bool(torch.isfinite(trained).all()):
            raise ArtifactError(f"{delta_path}: holds NaN or infinite values; delete it and rerun its train_det job")
        table = load_table(metrics_path)
        acc = table[(table.split == "validation") & (table.metric == "accuracy")].value
        if len(acc) != 1:
            raise ArtifactError(f"{metrics_path}: expected one validation accuracy, found {len(acc)}")
        rows.append(trained - init)
        inits.append(init)
        index.append({"row": row, "task": meta["task"], "seed": meta["seed"], "validation_accuracy": float(acc.iloc[0])})
    save_tensors(
        stacked_path,
        {"delta": torch.stack(rows), "init": torch.stack(inits)},
        {"det": det_name, "det_config": first["det_config"], "backbone": first["backbone"], "layout": layout.to_json()},
    )
    save_table(index_path, pd.DataFrame(index))
