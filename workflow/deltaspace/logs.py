"""Job logs: everything a stage prints goes to its log file as well as to the terminal."""
from __future__ import annotations

import sys
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path

from transformers.utils import logging as hf_logging

from .io import recording


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self):
        for s in self.streams:
            s.flush()

    def isatty(self):
        return False


@contextmanager
def logged(path):
    """Copy stdout and stderr into `path`; an exception is written there in full before it propagates."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    hf_logging.disable_progress_bar()
    # peft calls a transformers method that transformers 5 deprecates; nothing a user can act on.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    with open(path, "w", buffering=1) as log:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, log), _Tee(err, log)
        try:
            yield
        except BaseException:
            log.write(traceback.format_exc())
            raise
        finally:
            sys.stdout, sys.stderr = out, err


@contextmanager
def job(snakemake):
    """What every rule script runs inside: its log (`logged`), and its artifacts stamped with the rule, the
    wildcards, the config slice (every param but the code digest) and the code digest (`io.recording`)."""
    params = dict(snakemake.params.items())
    code = params.pop("code", None)
    with logged(snakemake.log[0]), recording(snakemake.rule, params, code, dict(snakemake.wildcards.items())):
        yield
