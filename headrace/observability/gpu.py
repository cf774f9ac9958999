"""GPU memory and utilisation, read at scrape time when the process runs models on CUDA."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuStats:
    device: str  # "cuda:0"
    memory_used_bytes: float
    memory_total_bytes: float
    utilization: float | None  # 0 to 1; None without NVML (the `nvidia-ml-py` package)


def read_gpus() -> list[GpuStats]:
    """Every visible CUDA device, or none when this process has not loaded torch (a
    gateway in front of remote workers never should, just for a gauge) or has no GPU."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return []
    out = []
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        try:
            utilization: float | None = torch.cuda.utilization(index) / 100
        except Exception:  # NVML missing or refusing: memory is still worth reporting
            utilization = None
        out.append(GpuStats(f"cuda:{index}", float(total - free), float(total), utilization))
    return out
