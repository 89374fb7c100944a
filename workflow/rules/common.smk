# Validate the config before any job is scheduled, and derive the target lists from it.
import sys

from deltaspace.config import ConfigError, det_config, det_names, task_config, task_names, validate_config

try:
    CFG = validate_config(config, workflow.basedir)
except ConfigError as exc:
    sys.exit(f"deltaspace: the config is not valid, nothing was run:\n{exc}")

DETS = det_names(CFG)
TASKS = task_names(CFG)
SEEDS = CFG["train"]["seeds"]
# Which seeds exist decides which jobs exist, not what any job computes: keep it out of train's params.
TRAIN = {key: value for key, value in CFG["train"].items() if key != "seeds"}


wildcard_constraints:
    det="|".join(DETS),
    task="|".join(TASKS),
    seed=r"\d+",


def all_targets():
    return expand("results/stacked/{det}.{ext}", det=DETS, ext=["safetensors", "parquet"])
