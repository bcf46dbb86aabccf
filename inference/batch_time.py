"""How long a batch takes: measured per lane, as a moving line over the batch's padded prompt tokens.

A batch of one short prompt and a batch of eight differ by half (2 s and 3 s on the default model), and
a 1 000-token shift log from a 1 500-token one by a third. One lane-wide average would plan every batch
as the mix of all of them, with a deviation that is mostly that mix. So each lane keeps, beside its
moving average, exponentially weighted least squares of time over padded tokens (recent batches count
most), and the mean deviation of batches from that line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

EWMA_WEIGHT = 0.2  # weight of the newest sample in the moving averages of batch time and arrival gap
DEVIATION_WEIGHT = 0.25  # the same for the mean deviation of batch time
LINE_WEIGHT = 0.1  # the same for the sums of the line: it remembers about ten batches
MIN_LINE_BATCHES = 3  # a line needs a few points before its slope means anything


class HasTokens(Protocol):
    prompt_tokens: int


def padded_tokens(jobs: Sequence[HasTokens]) -> int:
    """A batch's prompt tokens once padded to its longest prompt, as the model computes them."""
    return len(jobs) * max((job.prompt_tokens for job in jobs), default=0)


def updated_measurements(
    stats: Mapping[str, str], lane: str, inference_ms: float, *, tokens: int | None = None, jobs: int = 1
) -> dict[str, str]:
    """The stats fields to store after a batch of `jobs` jobs and `tokens` padded tokens took inference_ms."""
    fields = {}
    if f"batch_ms:{lane}" not in stats:
        mean, deviation = inference_ms, inference_ms / 2  # one sample: plan with a wide margin
    else:
        mean, deviation = float(stats[f"batch_ms:{lane}"]), float(stats.get(f"batch_dev_ms:{lane}") or 0)
        deviation += (abs(inference_ms - mean) - deviation) * DEVIATION_WEIGHT
        mean += (inference_ms - mean) * EWMA_WEIGHT
    fields[f"batch_ms:{lane}"], fields[f"batch_dev_ms:{lane}"] = f"{mean:.1f}", f"{deviation:.1f}"
    if tokens is None:
        return fields
    x, y, key = float(tokens), inference_ms, f"line:{lane}"
    if f"{key}:n" not in stats:
        sums, n, line_dev = {"x": x, "y": y, "xx": x * x, "xy": x * y}, 1, y / 2
    else:
        old = {name: float(stats[f"{key}:{name}"]) for name in ("x", "y", "xx", "xy", "dev", "n")}
        line_dev = old["dev"] + (abs(y - _on_line(old, x)) - old["dev"]) * DEVIATION_WEIGHT
        new = {"x": x, "y": y, "xx": x * x, "xy": x * y}
        sums = {name: old[name] + (new[name] - old[name]) * LINE_WEIGHT for name in new}
        n = int(old["n"]) + 1
    fields.update({f"{key}:{name}": f"{value:.6g}" for name, value in sums.items()})
    fields[f"{key}:dev"], fields[f"{key}:n"] = f"{line_dev:.1f}", str(n)
    # Tokens per job, for planning batches that are not formed yet (admission).
    per_job, old_per_job = x / max(1, jobs), stats.get(f"job_tokens:{lane}")
    if old_per_job is not None:
        per_job = float(old_per_job) + (per_job - float(old_per_job)) * EWMA_WEIGHT
    fields[f"job_tokens:{lane}"] = f"{per_job:.1f}"
    return fields


def _on_line(sums: Mapping[str, float], x: float) -> float:
    """The line's time at x; flat (the weighted mean) until its slope can be told from noise."""
    mx, my = sums["x"], sums["y"]
    variance = sums["xx"] - mx * mx
    if sums["n"] < MIN_LINE_BATCHES or variance <= (0.05 * mx) ** 2:
        return my
    slope = max(0.0, (sums["xy"] - mx * my) / variance)  # noise may tilt it; more tokens never take less time
    return max(0.0, my + slope * (x - mx))


def batch_estimate_ms(measurements: Mapping[str, float], lane: str, tokens: int | None = None) -> float:
    """How long a batch of this lane may take: likely, not just on average (0 until a batch ran).

    With `tokens` (its padded prompt tokens) and a line measured: the line there plus twice the
    deviation from the line. Otherwise the lane's moving average plus twice its mean deviation, as TCP
    plans round trips (RFC 6298)."""
    key = f"line:{lane}"
    if tokens is None or f"{key}:n" not in measurements:
        return measurements.get(f"batch_ms:{lane}", 0.0) + 2 * measurements.get(f"batch_dev_ms:{lane}", 0.0)
    sums = {name: float(measurements[f"{key}:{name}"]) for name in ("x", "y", "xx", "xy", "n")}
    return _on_line(sums, float(tokens)) + 2 * float(measurements[f"{key}:dev"])


def tokens_per_job(measurements: Mapping[str, float], lane: str) -> float | None:
    """The padded prompt tokens a job of this lane brings to its batch, on recent average."""
    return measurements.get(f"job_tokens:{lane}")
