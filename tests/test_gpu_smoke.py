"""scripts/gpu-smoke.sh: it runs where a GPU is, and skips cleanly (exit 0) where none is."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def gpu_smoke():
    spec = importlib.util.spec_from_file_location("gpu_smoke", ROOT / "bench" / "gpu_smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_the_smoke_check_says_so_and_succeeds():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the script runs for real here")
    done = subprocess.run(
        [str(ROOT / "scripts" / "gpu-smoke.sh")], env={**os.environ, "PY": sys.executable},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "gpu-smoke: skipped, no CUDA device" in done.stdout


def test_agreement_counts_identical_outputs_and_the_shared_start_of_the_others():
    agreement = gpu_smoke().agreement
    assert agreement(["abcd", "wxyz"], ["abcd", "wxyz"]) == (2, 1.0)
    assert agreement(["abcd", "wxyz"], ["abcd", "wxAB"]) == (1, 0.75)
    assert agreement(["abcd"], ["ab"]) == (0, 0.5)
