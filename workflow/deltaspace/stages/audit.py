"""Stage audit: the leakage audit (deltaspace.leakage) over every task of the config, before any subspace is
built: the overlap of each ordered pair of tasks, and an error when an unseen task's texts reach a source."""
from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from ..io import save_table
from ..leakage import LeakageError, fingerprints, leak_message, leaks, overlap_matrix
from ..tasks import load_task

WHOLE = 2**62  # no cap: the audit reads every example of every split, not only the ones a run samples


def audit(*, tasks: dict[str, dict], data: dict, groups: dict[str, list[str]], max_share: float, base_dir,
          table_path) -> None:
    """Write the overlap table (task, other, share: the share of task's texts that other holds, texts: how
    many task has) or, when an unseen task's share in one of its sources is above max_share, write nothing
    and raise LeakageError naming every such pair."""
    whole = {**data, "max_train": WHOLE, "max_validation": WHOLE, "max_test": WHOLE}
    texts = {name: fingerprints(load_task(task, whole, Path(base_dir)).splits)
             for name, task in tqdm(tasks.items(), desc="leakage audit", unit="task")}
    matrix = overlap_matrix(texts)
    found = leaks(matrix, groups, max_share)
    if found:
        raise LeakageError(leak_message(found, max_share))
    table = matrix.rename_axis(columns="other").stack().rename("share").reset_index()
    table["texts"] = table.task.map({name: len(t) for name, t in texts.items()})
    save_table(table_path, table[table.task != table.other].reset_index(drop=True))
    shared = table[(table.task != table.other) & (table.share > 0)].sort_values("share", ascending=False)
    print(f"{len(tasks)} tasks; pairs sharing texts: {len(shared)}" +
          "".join(f"\n  {r.task} in {r.other}: {r.share:.1%}" for r in shared.head(20).itertuples()))

