"""Device choice, seeding and determinism: the only place that knows about backends."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def pick_device(preferred: str | None = None) -> torch.device:
    """CUDA > MPS > CPU, unless ``preferred`` (or ``HANDLIB_DEVICE``) names one.

    An explicitly requested device that is not available raises a ValueError."""
    name = preferred or os.environ.get("HANDLIB_DEVICE") or ""
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        if device.type == "mps" and not (getattr(torch.backends, "mps", None)
                                         and torch.backends.mps.is_available()):
            raise ValueError(f"device {name!r} requested but MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch (all devices); optionally ask for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic matmuls.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.backends.cudnn.is_available():
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False


def describe_device(device: torch.device) -> str:
    """Human-readable device name for results records and tables."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"CPU ({threads} thread{'' if threads == 1 else 's'})"
    return device.type


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX, as oneDNN sees it). Without it,
    bf16 autocast on a CPU is emulated and slower than fp32: detect it, never assume it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), for benchmark records: a speed means little
    without the machine it was measured on. AMD's cloud CPUs all call themselves "AMD EPYC", so the
    family and model follow, with the core generation they mean (Zen 4 and Zen 5 differ twofold in
    bf16 throughput)."""
    import platform

    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as info:
                cpuinfo = info.read()
        except OSError:
            cpuinfo = ""
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    family, model = fields.get("cpu family"), fields.get("model")
    if fields.get("vendor_id") == "AuthenticAMD" and family and model:
        return f"{name} ({_zen_generation(int(family), int(model))}, family {family}, model {model})"
    return name


def _zen_generation(family: int, model: int) -> str:
    """AMD's core generation from the CPU family and model (AMD's published family/model tables)."""
    if family == 0x1A:
        return "Zen 5"
    if family == 0x19:
        return "Zen 4" if (0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or 0xA0 <= model <= 0xAF) else "Zen 3"
    if family == 0x17:
        return "Zen 2" if model >= 0x30 else "Zen"
    return "AMD"
