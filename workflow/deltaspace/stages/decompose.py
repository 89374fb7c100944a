"""Stages decompose and decompose_learned: the seen rows of every DET's stack, aligned by (task, seed), jointly
decomposed into one subspace, by the closed form (`svd`) or the paper's training (`learned`); and the control
(`random`): random directions of svd's dimension, offset and scale."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from ..delta import Layout
from ..io import ArtifactError, load_table, load_tensors, save_table
from ..spacefile import SpaceFile, save_space
from ..subspace import Subspace, SubspaceError, decompose, random_like

KEY = ["task", "seed"]  # what identifies a row of a stack


def decompose_stacks(*, method: str, dim: int, held_out: list[str], stacked: dict[str, str], indexes: dict[str, str],
                     projections_path, codes_path, reconstruction_path, offset: str = "init", control_seed: int = 0,
                     history_path=None, learned: dict | None = None, data: dict | None = None,
                     task_configs: dict[str, dict] | None = None, device: str = "auto", base_dir=".",
                     threads: int | None = None) -> None:
    """Write the subspace (projections), the seen rows' codes and every row's reconstruction error.

    `offset` says where z = 0 decodes to (subspace.OFFSETS); method `random` is the control of svd's subspace
    of the same dim and offset (subspace.random_like, seeded by control_seed).

    Method `learned` also needs its settings (`learned`: subspace.learned), the data settings, the seen
    tasks' configs (name -> task config), the device and where its loss curve goes (`history_path`); the
    backbone is the one the stacks record.
    """
    order, deltas, initial, metas = _aligned_stacks(stacked, indexes)
    is_seen = ~order.task.isin(held_out).to_numpy()
    seen = order[is_seen]
    if seen.empty:
        raise SubspaceError(f"every task is held out ({', '.join(held_out)}): no solutions build the subspace")
    mask = torch.as_tensor(is_seen)
    # Decoded deltas are added to one set of initial values, which every row must share: those of the first
    # row of the smallest seed.
    first_row = int(seen.seed.to_numpy().argmin())
    reference = seen.iloc[first_row]
    for det, init in initial.items():
        _check_one_init(stacked[det], order, init, int(torch.nonzero(mask)[first_row]))
    inits = {det: init[mask][first_row] for det, init in initial.items()}
    seen_deltas = {det: d[mask] for det, d in deltas.items()}
    first = next(iter(stacked))
    if method == "svd":
        subspace = decompose(seen_deltas, dim, method, offset)
    elif method == "random":
        subspace = random_like(decompose(seen_deltas, dim, "svd", offset), seen_deltas, control_seed)
    elif method == "learned":
        if learned is None or history_path is None:
            raise SubspaceError("method 'learned' needs its settings (learned=...) and a history_path")
        subspace = _learn(seen_deltas, seen.task.tolist(), inits, dim, offset, metas, learned, data, task_configs,
                          device, base_dir, history_path, threads)
    else:
        raise SubspaceError(f"unknown decomposition method {method!r} (known: svd, learned, random)")
    meta = {
        "method": method,
        "dim": dim,
        "offset": offset,
        "dets": list(stacked),
        "layouts": {det: metas[det]["layout"] for det in stacked},
        "det_configs": {det: metas[det]["det_config"] for det in stacked},
        "backbone": metas[first]["backbone"],
        "rows": [{"task": t, "seed": int(s)} for t, s in seen[KEY].itertuples(index=False)],
        "held_out": list(held_out),
        "init_from": {"task": reference.task, "seed": int(reference.seed)},
        "shared_init": True,  # checked above: a stack whose rows start elsewhere is refused
    }
    codes = pd.DataFrame(subspace.codes.numpy(), columns=[f"z{i}" for i in range(dim)])
    codes.insert(0, "seed", seen.seed.to_numpy())
    codes.insert(0, "task", seen.task.to_numpy())
    codes.insert(0, "space", subspace.name)
    save_space(projections_path, SpaceFile(subspace, inits, meta))
    save_table(codes_path, codes)
    save_table(reconstruction_path, reconstruction(subspace, order, deltas, mask))


def _aligned_stacks(stacked: dict[str, str], indexes: dict[str, str]):
    """Every DET's stack read and its rows put in one order, (task, seed) sorted: (that order, deltas and
    initial values per DET, each stack's header)."""
    data, frames, metas = {}, {}, {}
    for det, path in stacked.items():
        tensors, metas[det] = load_tensors(path)
        if "delta" not in tensors or "layout" not in metas[det]:
            raise ArtifactError(f"{path}: not a stack_deltas output")
        data[det], frames[det] = tensors, load_table(indexes[det])
        if len(frames[det]) != tensors["delta"].shape[0]:
            raise ArtifactError(f"{indexes[det]}: {len(frames[det])} rows, but its stack has {tensors['delta'].shape[0]}")
    first = next(iter(stacked))
    order = frames[first][KEY].sort_values(KEY, kind="stable")
    for det, frame in frames.items():
        if sorted(map(tuple, frame[KEY].values.tolist())) != sorted(map(tuple, order.values.tolist())):
            raise ArtifactError(f"{indexes[det]}: its (task, seed) rows differ from those of {indexes[first]}")
        if metas[det]["backbone"] != metas[first]["backbone"]:
            raise ArtifactError(f"{stacked[det]}: trained on another backbone than {stacked[first]}")
    deltas, initial = {}, {}
    for det, frame in frames.items():
        where = {row: i for i, row in enumerate(frame[KEY].itertuples(index=False, name=None))}
        index = [where[row] for row in order.itertuples(index=False, name=None)]
        deltas[det], initial[det] = data[det]["delta"][index], data[det]["init"][index]
    return order, deltas, initial, metas


def _check_one_init(path, order: pd.DataFrame, init: torch.Tensor, reference: int) -> None:
    """Refuse a stack whose rows started from different initial values (train.init_seed: null gives each seed
    its own): their deltas would be added to the reference row's initial values without a word."""
    differ = [(t, int(s)) for (t, s), same in zip(order[KEY].itertuples(index=False), (init == init[reference]).all(1))
              if not same]
    if differ:
        task, seed = order.iloc[reference]
        rows = ", ".join(f"{t} seed {s}" for t, s in differ)
        raise SubspaceError(f"{path}: the rows {rows} start from other initial values than {task} seed {seed}; a "
                            "subspace adds every decoded delta to one set of them: train every run from one "
                            "init (train.init_seed: an integer, 0 by default) and rerun train_det")


def reconstruction(subspace: Subspace, order: pd.DataFrame, deltas: dict[str, torch.Tensor],
                   seen: torch.Tensor) -> pd.DataFrame:
    """Per DET and row: the error of the row's decoded code (seen rows: the joint code of the decomposition;
    held-out rows: their own least-squares code), relative to the delta and to its deviation from the offset."""
    errors = []
    for det, x in deltas.items():
        z = subspace.encode(det, x)
        z[seen] = subspace.codes
        residual = (x - subspace.decode(det, z)).norm(dim=1)
        errors += [
            {"space": subspace.name, "det": det, "task": t, "seed": int(s), "seen": bool(v),
             "relative_error": float(r / max(n, 1e-30)), "unexplained": float((r / max(c, 1e-30)) ** 2)}
            for (t, s), v, r, n, c in zip(order[KEY].itertuples(index=False), seen.tolist(), residual, x.norm(dim=1),
                                          (x - subspace.offsets[det]).norm(dim=1))
        ]
    return pd.DataFrame(errors)


def _learn(deltas: dict[str, torch.Tensor], tasks: list[str], inits: dict[str, torch.Tensor], dim: int, offset: str,
           metas: dict[str, dict], settings: dict, data: dict, task_configs: dict[str, dict], device: str, base_dir,
           history_path, threads: int | None) -> Subspace:
    """The `learned` method: each DET's frozen classifier per seen task, the projections learned with them
    (deltaspace.learned.learn), the loss history written."""
    # transformers and the backbone: only this method needs them
    from ..heads import build_classifier
    from ..learned import learn
    from ..models import job_device
    from ..tasks import load_task
    from ..train import Split

    device = job_device(device, threads)
    layouts = {det: Layout.from_json(m["layout"]) for det, m in metas.items()}
    backbone = next(iter(metas.values()))["backbone"]
    names = list(dict.fromkeys(tasks))
    task_data = {name: load_task(task_configs[name], data, Path(base_dir)) for name in names}
    models, splits = {}, {}
    for det, meta in metas.items():
        first, _ = build_classifier(backbone, meta["det_config"], task_data[names[0]].labels, 0)
        if Layout.of_trainable(first) != layouts[det]:
            raise SubspaceError(f"{det}: the model built from the recorded DET config does not fit its stack's layout")
        first.requires_grad_(False)
        models[det] = {name: first if i == 0 else first.for_labels(task_data[name].labels)
                       for i, name in enumerate(names)}
        if not splits:  # one backbone, one tokenizer: tokenise each task once
            splits = {name: Split.of(first, task_data[name].splits["train"]) for name in names}
    subspace, history = learn(deltas=deltas, tasks=tasks, models=models, train_splits=splits, inits=inits,
                              layouts=layouts, dim=dim, settings=settings, device=device, offset=offset)
    print(f"learned: {history['seconds'].max():.1f} s of training")
    save_table(history_path, history.drop(columns="seconds"))  # a clock reading: logged, not stored
    return subspace
