"""What a model was trained on, for its card: the compute device in words and the software versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import torch

import DosimetryCore
from DosimetryCore.core.device import resolve_device


def hardware_description(device: str | torch.device | None = None, world_size: int = 1) -> str:
    """The compute device in words: GPU name and memory, or CPU model, cores and torch threads; with
    ``world_size`` > 1 (torchrun), prefixed by the number of processes (this process's device described)."""
    device = resolve_device(device)
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        text = f"cuda: {properties.name}, {properties.total_memory / 2**30:.0f} GiB"
    else:
        text = f"cpu: {_cpu_model()}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads"
    return text if world_size == 1 else f"{world_size} processes (torchrun), each {text}"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def software_versions() -> dict[str, str]:
    """Versions of DeepDosimetry, torch, MONAI and Python."""
    return {
        "deepdosimetry": DosimetryCore.__version__,
        "torch": torch.__version__,
        "monai": importlib.metadata.version("monai"),
        "python": platform.python_version(),
    }
