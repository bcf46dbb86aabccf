"""EDGE_DEVICE and the dtype that suits it: where a worker's model runs. Pure functions: the caller says what
the machine has, so a test covers a GPU's cases on a CPU."""

from __future__ import annotations

import re

from inference.model_files import ModelConfigError

DTYPE_NAMES = ("float32", "bfloat16", "float16")
_DEVICE = re.compile(r"^(auto|cpu|cuda(?::(\d{1,3}))?)$")


def resolve_device(spec: str, *, cuda_devices: int) -> str:
    """EDGE_DEVICE as a torch device name: `auto` (the first GPU if there is one, else the CPU), `cpu`,
    `cuda` (the first GPU) or `cuda:N`. Asking for a GPU the machine lacks is an error, never a silent
    fall back to the CPU: a worker would then plan and run at a tenth of the speed it was sized for."""
    spec = (spec or "auto").strip().lower()
    match = _DEVICE.match(spec)
    if not match:
        raise ModelConfigError(f"EDGE_DEVICE must be auto, cpu, cuda or cuda:N (N a GPU's number), got {spec!r}")
    if spec == "auto":
        return "cuda:0" if cuda_devices else "cpu"
    if spec == "cpu":
        return "cpu"
    index = int(match.group(2) or 0)
    if index >= cuda_devices:
        found = f"it has {cuda_devices} (cuda:0 to cuda:{cuda_devices - 1})" if cuda_devices else "it has none"
        raise ModelConfigError(f"EDGE_DEVICE={spec} names a GPU this machine does not have: {found}")
    return f"cuda:{index}"


def device_class(device: str) -> str:
    """What a pool of workers is named by: `cpu` or `cuda` (all GPUs of a kind plan alike)."""
    return device.split(":", 1)[0]


def default_dtype(device: str, *, bf16_supported: bool) -> str:
    """float32 on a CPU (bfloat16 is faster there but changes many greedy outputs: BENCHMARKS.md); on a GPU
    bfloat16 where it is supported, else float16."""
    if device_class(device) == "cpu":
        return "float32"
    return "bfloat16" if bf16_supported else "float16"


def resolve_dtype(spec: str, device: str, *, bf16_supported: bool) -> str:
    """EDGE_DTYPE, or empty for the device's default."""
    spec = (spec or "").strip().lower()
    if not spec:
        return default_dtype(device, bf16_supported=bf16_supported)
    if spec not in DTYPE_NAMES:
        raise ModelConfigError(f"EDGE_DTYPE must be one of {', '.join(DTYPE_NAMES)} (or empty), got {spec!r}")
    return spec
