"""The published numbers of Yi et al. (Findings of EMNLP 2022), set beside ours in the report.

All are relative performance, %: the subspace result over the same DET's original-space result (T5 v1.1
base, full data, one checkpoint per DET and task). Keys are DET methods; transfer pairs are (source, target).
"""
from __future__ import annotations

PAPER_DETS = ("adapter", "lora", "prefix")

# Table 1, single-task subspace optimisation: a source task's solutions build a d=4 subspace, then only the
# code is trained on a related target task.
SINGLE_TASK_ROWS = {
    "SST-2 -> Rotten Tomatoes": {"adapter": 101.8, "lora": 100.1, "prefix": 99.3},
    "SST-2 -> Amazon": {"adapter": 98.0, "lora": 96.9, "prefix": 98.2},
    "MNLI -> SciTail": {"adapter": 82.9, "lora": 79.8, "prefix": 84.4},
    "MNLI -> RTE": {"adapter": 95.4, "lora": 68.2, "prefix": 80.2},
    "WiC -> WSC": {"adapter": 70.6, "lora": 57.6, "prefix": 77.1},
    "QQP -> MRPC": {"adapter": 85.4, "lora": 84.3, "prefix": 83.1},
    "DREAM -> CoPA": {"adapter": 98.3, "lora": 71.6, "prefix": 92.5},
}
SINGLE_TASK_AVERAGE = {"adapter": 88.5, "lora": 80.9, "prefix": 85.3}

# Table 2, single-task cross-DET transfer (averages over the target tasks).
SINGLE_TASK_TRANSFER = {
    ("adapter", "lora"): 81.7, ("adapter", "prefix"): 80.2, ("lora", "adapter"): 85.0,
    ("lora", "prefix"): 81.0, ("prefix", "adapter"): 85.3, ("prefix", "lora"): 82.6,
}

# Table 4, multi-task: 60 training tasks build the subspace (d = 100), averages over 9 unseen tasks.
MULTI_TASK_AVERAGE = {"adapter": 95.1, "lora": 89.8, "prefix": 81.1}

# Table 3, multi-task cross-DET transfer on the unseen tasks.
MULTI_TASK_TRANSFER = {
    ("adapter", "lora"): 83.6, ("adapter", "prefix"): 76.5, ("lora", "adapter"): 90.0,
    ("lora", "prefix"): 80.9, ("prefix", "adapter"): 90.9, ("prefix", "lora"): 86.1,
}

SETTINGS = {
    "single_task": {"average": SINGLE_TASK_AVERAGE, "transfer": SINGLE_TASK_TRANSFER, "rows": SINGLE_TASK_ROWS,
                    "tables": ("Table 1", "Table 2")},
    "multi_task": {"average": MULTI_TASK_AVERAGE, "transfer": MULTI_TASK_TRANSFER, "rows": {},
                   "tables": ("Table 4", "Table 3")},
}
