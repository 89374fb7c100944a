"""What every benchmark shares: the machine, its measured matmul peak, the default config and one result row."""
from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))  # the deltaspace library, also where it is not installed

from deltaspace.config import load_config, validate_config


@dataclass
class Row:
    """One comparison: ours against the baseline, ratio = ours / baseline, and whether the target is met."""

    name: str
    ours: float
    baseline: float | None
    units: str
    target: str
    met: bool | None
    machine: str
    peak_share: float | None = None  # ours in model FLOP/s over the measured matmul peak
    baseline_peak_share: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return None if self.baseline in (None, 0) else self.ours / self.baseline

    def as_dict(self) -> dict:
        return asdict(self) | {"ratio": self.ratio}


def machine(device: torch.device, threads: int) -> str:
    """The hardware a figure was measured on, in words."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (bf16)"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {threads} thread(s), torch {torch.__version__}"


def default_config() -> dict:
    """The embedded default (config.yaml), validated and filled, as the workflow sees it."""
    return validate_config(load_config(ROOT / "config.yaml"), ROOT)


def matmul_peak(device: torch.device, seconds: float = 2.0) -> float:
    """This machine's measured matrix-product rate in FLOP/s: the best of square fp32 products on the CPU
    (at the current thread count), of bf16 products on a GPU."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    best = 0.0
    for n in ((4096, 8192) if device.type == "cuda" else (512, 1024, 2048)):
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        for _ in range(3):
            a @ b
        sync(device)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            a @ b
            count += 1
        sync(device)
        best = max(best, 2 * n**3 * count / (time.perf_counter() - start))
    return best


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device):
    """(result of fn(), wall seconds), the device's queue drained before and after."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start
