import json
import re

import pytest
from django.core.management import CommandError, call_command

from edgeportal.lab.models import LabRun


@pytest.fixture(autouse=True)
def _db(db):
    pass


@pytest.fixture
def tiny_env(monkeypatch, tiny_model_path):
    """The command loads its model the way a worker does: from EDGE_MODEL."""
    monkeypatch.setenv("EDGE_MODEL", str(tiny_model_path))
    monkeypatch.setenv("EDGE_DTYPE", "float32")


@pytest.fixture
def workload(tmp_path):
    path = tmp_path / "prompts.jsonl"
    row = {"source": "plc", "kind": "plc", "language": "en"}
    rows = [{"id": i, **row, "prompt": f"Line {i} stopped."} for i in range(5)]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def lab(*args, **options):
    call_command("latency_lab", *args, "--no-progress", **options)


def test_the_lab_sweeps_the_tiny_model_and_stores_one_point_per_window(tiny_env, workload, capsys):
    # Six jobs sent within a fraction of a second: a 1000 ms window gathers them all, window 0 cannot.
    lab(
        "--windows", "0,1000", "--jobs", "6", "--rate", "50", "--max-batch-size", "8", "--max-new-tokens", "4",
        "--workload", str(workload), "--target-p95-ms", "100000", "--seed", "2",
    )  # fmt: skip
    out = capsys.readouterr().out
    run = LabRun.objects.get()
    short, long = run.points.order_by("window_ms")
    assert (short.window_ms, long.window_ms) == (0, 1000)
    # the weights of the engine a worker would choose: llama.cpp's float16 where it is built (EDGE_ENGINE=auto)
    from inference.llama_engine import available

    assert run.model_name == "tiny-model-v1" and run.dtype == ("float16" if available() is None else "float32")
    assert run.parameters["windows"] == [0, 1000] and run.parameters["jobs"] == 6
    assert run.comparison["jobs"] == 8 and run.comparison["batch_ms"] > 0
    assert run.target_p95_ms == 100000

    for point in (short, long):
        assert point.jobs == 6 and len(point.samples) == 6
        for sample in point.samples:
            assert sample["queue_wait_ms"] >= 0
            assert sample["queue_wait_ms"] == pytest.approx(sample["batch_start_ms"] - sample["arrival_ms"], abs=0.11)
            assert 20 <= sample["arrival_ms"] - sample["sent_ms"] <= 200
    # Same arrivals, so the only difference is the window: the long one waits and batches more.
    assert [s["arrival_ms"] for s in short.samples] == [s["arrival_ms"] for s in long.samples]
    assert long.mean_batch_size > short.mean_batch_size
    first = min(short.samples, key=lambda s: s["arrival_ms"])
    assert first["batch_size"] == 1 and first["queue_wait_ms"] == 0  # window 0: the first arrival runs at once

    assert "window ms" in out and "mean batch" in out and "p95 ms" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["0"], ["1000"])]
    assert [(row[0], row[1]) for row in rows] == [("0", "6"), ("1000", "6")]
    assert f"{long.mean_batch_size:.2f}" in rows[1]
    assert "recommended window for p95 <= 100000 ms" in out
    assert f"stored as lab run {run.pk}: /lab/{run.pk}/" in out


def test_a_duration_sends_jobs_for_that_long_and_the_rate_comes_from_the_single_request_time(tiny_env, workload):
    lab("--windows", "20", "--duration", "0.5", "--max-new-tokens", "2", "--workload", str(workload))
    run = LabRun.objects.get()
    expected_rate = 1.2 * 1000 / run.comparison["single_mean_ms"]
    assert run.parameters["rate_per_s"] == pytest.approx(expected_rate, rel=0.01)
    assert run.parameters["rate_given"] is False
    point = run.points.get()
    assert max(s["sent_ms"] for s in point.samples) <= 500


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--windows", "0,fast"], r"must be a whole number from 0 to 10000 \(digits 0-9\), got 'fast'"),
        (["--windows", "0,,60"], "separated by commas"),
        (["--windows", "60,60"], "each window may appear once"),
        (["--windows", "20000"], "from 0 to 10000, got 20000"),
        (["--jitter-ms", "200,20"], "0 <= low <= high"),
        (["--jitter-ms", "20"], "two numbers"),
        (["--rate", "0"], "must be above 0"),
        (["--rate", "nan"], "must be above 0"),
        (["--max-batch-size", "0"], "from 1 to 256, got 0"),
        (["--jobs", "5", "--duration", "2"], "not allowed with argument"),
    ],
)
def test_bad_options_are_clear_errors_before_any_model_loads(args, message, monkeypatch):
    monkeypatch.setenv("EDGE_MODEL", "/nowhere/model.gguf")  # would fail differently if it were loaded
    with pytest.raises(CommandError, match=message):
        lab(*args)
    assert not LabRun.objects.exists()


def test_a_duration_that_would_send_too_many_jobs_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("EDGE_MODEL", "/nowhere/model.gguf")  # refused before the model loads
    with pytest.raises(CommandError, match="about 36000000 jobs per window; the limit is 10000"):
        lab("--duration", "3600", "--rate", "10000")


def test_a_missing_workload_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match=r"--workload: workload file .*missing\.jsonl does not exist"):
        lab("--workload", str(tmp_path / "missing.jsonl"))


def test_a_model_that_cannot_be_found_is_a_clear_error(monkeypatch, workload):
    monkeypatch.setenv("EDGE_MODEL", "/nowhere/model.gguf")
    with pytest.raises(CommandError, match=re.escape("EDGE_MODEL='/nowhere/model.gguf' is neither")):
        lab("--workload", str(workload))
