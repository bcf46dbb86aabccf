"""EDGE_DEVICE and EDGE_DTYPE: every case a GPU machine meets, checked on any machine."""

import pytest

from inference.devices import default_dtype, device_class, resolve_device, resolve_dtype
from inference.model_files import ModelConfigError


@pytest.mark.parametrize(
    ("spec", "gpus", "device"),
    [
        ("auto", 0, "cpu"),
        ("", 0, "cpu"),
        ("auto", 2, "cuda:0"),
        ("cpu", 2, "cpu"),
        (" CUDA ", 1, "cuda:0"),
        ("cuda:1", 2, "cuda:1"),
    ],
)
def test_a_device_is_named_by_what_the_machine_has(spec, gpus, device):
    assert resolve_device(spec, cuda_devices=gpus) == device


@pytest.mark.parametrize(
    ("spec", "gpus", "message"),
    [
        ("cuda", 0, "names a GPU this machine does not have: it has none"),
        ("cuda:2", 2, r"it has 2 \(cuda:0 to cuda:1\)"),
        ("gpu", 1, "must be auto, cpu, cuda or cuda:N"),
        ("cuda:x", 1, "must be auto, cpu, cuda or cuda:N"),
        ("cuda:-1", 1, "must be auto, cpu, cuda or cuda:N"),
    ],
)
def test_a_device_the_machine_lacks_is_a_clear_error_never_a_silent_cpu(spec, gpus, message):
    with pytest.raises(ModelConfigError, match=message):
        resolve_device(spec, cuda_devices=gpus)


def test_the_dtype_defaults_to_float32_on_a_cpu_and_bfloat16_on_a_gpu_that_has_it():
    assert default_dtype("cpu", bf16_supported=True) == "float32"
    assert default_dtype("cuda:0", bf16_supported=True) == "bfloat16"
    assert default_dtype("cuda:1", bf16_supported=False) == "float16"
    assert resolve_dtype("", "cuda:0", bf16_supported=True) == "bfloat16"
    assert resolve_dtype("float32", "cuda:0", bf16_supported=True) == "float32"  # asked for: kept
    with pytest.raises(ModelConfigError, match="EDGE_DTYPE must be one of float32, bfloat16, float16"):
        resolve_dtype("int3", "cpu", bf16_supported=False)


def test_pools_group_devices_by_their_class():
    assert [device_class(d) for d in ("cpu", "cuda:0", "cuda:3")] == ["cpu", "cuda", "cuda"]
