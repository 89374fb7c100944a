# Validate the config before any job is scheduled, and derive the target lists from it.
import sys

from deltaspace.config import ConfigError, canonical, det_config, det_names, task_config, task_names, validate_config

try:
    CFG = canonical(validate_config(config, workflow.basedir))
except ConfigError as exc:
    sys.exit(f"deltaspace: the config is not valid, nothing was run:\n{exc}")

DETS = det_names(CFG)
TASKS = task_names(CFG)
SEEDS = CFG["train"]["seeds"]
# Which seeds exist decides which jobs exist, and threads how fast they run, not what a job computes:
# both stay out of train's params, so changing them reruns nothing.
TRAIN = {key: value for key, value in CFG["train"].items() if key not in ("seeds", "threads")}


wildcard_constraints:
    det="|".join(DETS),
    task="|".join(TASKS),
    seed=r"\d+",


def all_targets():
    return expand("results/stacked/{det}.{ext}", det=DETS, ext=["safetensors", "parquet"])
