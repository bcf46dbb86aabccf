"""How long a batch takes: measured per lane, as a moving line over the batch's padded prompt tokens, and
anchored to a baseline that the worker measures when it starts.

A batch of one short prompt and a batch of eight differ by half (2 s and 3 s on the default model), and
a 1 000-token shift log from a 1 500-token one by a third. One lane-wide average would plan every batch
as the mix of all of them, with a deviation that is mostly that mix. So each lane keeps, beside its
moving average, exponentially weighted least squares of time over padded tokens (recent batches count
most), and the mean deviation of batches from that line.

Measurements describe the node as it was when batches last ran. These rules keep them from describing
a node that is gone (an overload's slow batches, say, that nothing runs any more to correct):
- the deviation planned around an estimate is at most DEVIATION_CAP of it;
- the baseline (a line measured by the worker at start, or, before any worker measured one, a prior
  from the model's size) stands in for a lane with nothing measured; while the line has no slope, it
  stands in for batches measured faster, and counts as one batch more beside those measured slower;
- a moving average counts its first samples alike (a plain mean) until it has as many as it remembers:
  a cold start's first batch, slowed by the burst that brought it, weighs no more than the next ones;
- measurements decay towards the baseline as they age: after STALE_HALF_LIFE_S without a batch in the
  lane, the estimate is halfway back to it.

The line covers the output a lane's batches usually write. A job that may write more (its max_new_tokens
past the lane's usual decoding steps) is planned with those steps added at the lane's time per step
(output_extra_ms): a request for 1 024 new tokens is not planned like one for 32.

Stats fields, per lane: batch_ms, batch_dev_ms (moving average and deviation), line:{x,y,xx,xy,dev,n}
(the line's weighted sums), job_tokens (padded tokens a job brings), steps and step_ms (decoding steps a
batch takes, its longest output, and the time of one), measured_at (Redis clock, s);
base_ms, base_ms_per_token, base_tokens, base_job_tokens, base_steps, base_step_ms (the baseline line,
the padded tokens of a typical batch and of a typical job, the latter standing in for job_tokens until a
batch ran, and the baseline's decoding steps and time per step).
A measurements mapping may carry now_s (Redis clock, s, when it was read): decay needs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from inference.lanes import Lane

EWMA_WEIGHT = 0.2  # weight of the newest sample in the moving averages of batch time and arrival gap
DEVIATION_WEIGHT = 0.25  # the same for the mean deviation of batch time
LINE_WEIGHT = 0.1  # the same for the sums of the line: it remembers about ten batches
MIN_LINE_BATCHES = 3  # a line needs a few points before its slope means anything
DEVIATION_CAP = 0.5  # a batch is planned at most at twice its central estimate
# The deviation planned around a baseline: one sample per point, taken on an idle node, so as wide as
# around a first batch. A cold start's first batch runs while the web answers the burst that brought
# it: up to 1.85 times its warm-up's time on two cores (BENCHMARKS.md, overload at the edges).
BASELINE_DEVIATION = DEVIATION_CAP
STALE_HALF_LIFE_S = 60.0  # measurements count half as much after this long without a batch in their lane


class HasTokens(Protocol):
    prompt_tokens: int


def padded_tokens(jobs: Sequence[HasTokens]) -> int:
    """A batch's prompt tokens once padded to its longest prompt, as the model computes them: a job of n
    candidates (inference.candidates) is n rows."""
    rows = sum(getattr(job, "rows", 1) for job in jobs)
    return rows * max((job.prompt_tokens for job in jobs), default=0)


def updated_measurements(
    stats: Mapping[str, str],
    lane: str,
    inference_ms: float,
    *,
    tokens: int | None = None,
    jobs: int = 1,
    now: float | None = None,
    steps: int | None = None,
    step_ms: float | None = None,
) -> dict[str, str]:
    """The stats fields to store after a batch of `jobs` jobs and `tokens` padded tokens took inference_ms,
    measured at `now` (Redis clock, s), decoding `steps` steps (its longest output) of step_ms each."""
    fields = {}
    for name, value in (("steps", steps), ("step_ms", step_ms)):
        if value is not None and value > 0:
            old = stats.get(f"{name}:{lane}")
            value = float(value) if old is None else float(old) + (float(value) - float(old)) * EWMA_WEIGHT
            fields[f"{name}:{lane}"] = f"{value:.2f}"
    # Batches measured before this one (the line counts them): while fewer than a moving average
    # remembers, each counts alike, so a cold start's first batch does not outweigh the next ten.
    before = stats.get(f"line:{lane}:n")
    if f"batch_ms:{lane}" not in stats:
        mean, deviation = inference_ms, inference_ms / 2  # one sample: plan with a wide margin
    else:
        mean, deviation = float(stats[f"batch_ms:{lane}"]), float(stats.get(f"batch_dev_ms:{lane}") or 0)
        deviation += (abs(inference_ms - mean) - deviation) * DEVIATION_WEIGHT
        mean += (inference_ms - mean) * (EWMA_WEIGHT if before is None else _weight(EWMA_WEIGHT, int(float(before))))
    deviation = min(deviation, mean * DEVIATION_CAP)  # one wild batch cannot make every later plan wild
    fields[f"batch_ms:{lane}"], fields[f"batch_dev_ms:{lane}"] = f"{mean:.1f}", f"{deviation:.1f}"
    if now is not None:
        fields[f"measured_at:{lane}"] = f"{now:.3f}"
    if tokens is None:
        return fields
    x, y, key = float(tokens), inference_ms, f"line:{lane}"
    if f"{key}:n" not in stats:
        sums, n, line_dev = {"x": x, "y": y, "xx": x * x, "xy": x * y}, 1, y / 2
    else:
        old = {name: float(stats[f"{key}:{name}"]) for name in ("x", "y", "xx", "xy", "dev", "n")}
        on_line = _on_line(old, x)
        line_dev = old["dev"] + (abs(y - on_line) - old["dev"]) * DEVIATION_WEIGHT
        line_dev = min(line_dev, max(on_line, y) * DEVIATION_CAP)
        new = {"x": x, "y": y, "xx": x * x, "xy": x * y}
        weight = _weight(LINE_WEIGHT, int(old["n"]))
        sums = {name: old[name] + (new[name] - old[name]) * weight for name in new}
        n = int(old["n"]) + 1
    fields.update({f"{key}:{name}": f"{value:.6g}" for name, value in sums.items()})
    fields[f"{key}:dev"], fields[f"{key}:n"] = f"{line_dev:.1f}", str(n)
    # Tokens per job, for planning batches that are not formed yet (admission).
    per_job, old_per_job = x / max(1, jobs), stats.get(f"job_tokens:{lane}")
    if old_per_job is not None:
        per_job = float(old_per_job) + (per_job - float(old_per_job)) * EWMA_WEIGHT
    fields[f"job_tokens:{lane}"] = f"{per_job:.1f}"
    return fields


def _weight(weight: float, before: int) -> float:
    """The newest sample's weight in a moving average that has seen `before` samples: the plain mean's
    until that is less than `weight` (an average started at its first sample would give that sample the
    weight of all the samples the average remembers)."""
    return max(weight, 1 / (before + 1))


def _slope(sums: Mapping[str, float]) -> float | None:
    """The line's ms per token; None until it can be told from noise (too few batches, or all of a size)."""
    mx, my = sums["x"], sums["y"]
    variance = sums["xx"] - mx * mx
    if sums["n"] < MIN_LINE_BATCHES or variance <= (0.05 * mx) ** 2:
        return None
    return max(0.0, (sums["xy"] - mx * my) / variance)  # noise may tilt it; more tokens never take less time


def _on_line(sums: Mapping[str, float], x: float) -> float:
    """The line's time at x; flat (the weighted mean) until it has a slope."""
    slope = _slope(sums)
    return sums["y"] if slope is None else max(0.0, sums["y"] + slope * (x - sums["x"]))


# --- the baseline: measured at the worker's start, or a prior from the model's size -----------------


def baseline_fields(
    lane: str, *, ms: float, ms_per_token: float, tokens: int, job_tokens: int, steps: int = 0, step_ms: float = 0.0
) -> dict[str, str]:
    """The stats fields of a lane's baseline: a batch of `t` padded tokens takes ms + ms_per_token * t;
    a typical batch has `tokens`, a typical job `job_tokens`; its output takes `steps` decoding steps of
    step_ms each (none given: no output beyond the usual is planned before a batch measured one)."""
    steps_fields = {f"base_steps:{lane}": str(int(steps)), f"base_step_ms:{lane}": f"{step_ms:.2f}"}
    return {
        **(steps_fields if steps > 0 and step_ms > 0 else {}),
        f"base_ms:{lane}": f"{max(0.0, ms):.1f}",
        f"base_ms_per_token:{lane}": f"{max(0.0, ms_per_token):.4f}",
        f"base_tokens:{lane}": str(max(1, int(tokens))),
        f"base_job_tokens:{lane}": str(max(1, int(job_tokens))),
    }


def warm_up_baseline(
    one: tuple[int, float], full: tuple[int, float], chunk: tuple[int, float], *, new_tokens: int = 0
) -> dict[str, str]:
    """The baseline of both lanes from the worker's warm-up, each sample (padded tokens, ms): a short
    batch of one job and a full one, each writing new_tokens, give the short lane's line; the long lane
    decodes like the batch of one and reads its prompt at the pace of one prefill chunk (a little more
    than it needs, as the chunk's time includes a decoding step). A decoding step is planned at the full
    batch's time per new token (its prompt's share included: more than a step takes)."""
    (one_tokens, one_ms), (full_tokens, full_ms), (chunk_tokens, chunk_ms) = one, full, chunk
    slope = max(0.0, (full_ms - one_ms) / (full_tokens - one_tokens)) if full_tokens > one_tokens else 0.0
    output = {"steps": new_tokens, "step_ms": full_ms / new_tokens if new_tokens else 0.0}
    return {
        **baseline_fields(
            Lane.SHORT,
            ms=one_ms - slope * one_tokens,
            ms_per_token=slope,
            tokens=full_tokens,
            job_tokens=one_tokens,
            **output,
        ),
        **baseline_fields(
            Lane.LONG,
            ms=one_ms,
            ms_per_token=chunk_ms / max(1, chunk_tokens),
            tokens=chunk_tokens,
            job_tokens=chunk_tokens,
            **output,
        ),
    }


# A prior for a node whose workers measured nothing yet, from the model's size alone: a forward pass
# costs about two operations per parameter and token. The rates are below what two CPU cores reach
# (about 7 GFLOP/s decoding and 60 prefilling the default model), so the prior plans more than it takes.
PRIOR_DECODE_FLOPS = 4e9
PRIOR_PREFILL_FLOPS = 40e9


def model_prior(parameters: int, *, new_tokens: int, batch_size: int, short_tokens: int = 48) -> dict[str, str]:
    """The baseline of both lanes for a model of this many parameters generating new_tokens per job."""
    step_ms = 2 * parameters / PRIOR_DECODE_FLOPS * 1000
    per_token_ms = 2 * parameters / PRIOR_PREFILL_FLOPS * 1000
    output = {"steps": new_tokens, "step_ms": step_ms}
    return {
        **baseline_fields(
            Lane.SHORT,
            ms=new_tokens * step_ms,
            ms_per_token=per_token_ms,
            tokens=batch_size * short_tokens,
            job_tokens=short_tokens,
            **output,
        ),
        **baseline_fields(
            Lane.LONG, ms=new_tokens * step_ms, ms_per_token=per_token_ms, tokens=1024, job_tokens=1024, **output
        ),
    }


# --- estimates ---------------------------------------------------------------------------------


def _measured(m: Mapping[str, float], lane: str, tokens: int | None) -> tuple[float, float, float] | None:
    """(central, deviation, batches behind it) of what ran in the lane; None if nothing did. While the
    line has no slope, the baseline lends it its shape: batches of other sizes than those measured scale
    as the warm-up's did (a lone job after a run of full batches takes less than a full batch)."""
    key = f"line:{lane}"
    if tokens is not None and f"{key}:n" in m:
        sums = {name: float(m[f"{key}:{name}"]) for name in ("x", "y", "xx", "xy", "n")}
        central, deviation = _on_line(sums, float(tokens)), float(m[f"{key}:dev"])
        if _slope(sums) is None and (base := _baseline(m, lane, tokens)) and (at := _baseline(m, lane, sums["x"])):
            if at[0] > 0:
                central, deviation = central * base[0] / at[0], deviation * base[0] / at[0]
        return central, deviation, sums["n"]
    if f"batch_ms:{lane}" in m:
        n = float(m.get(f"{key}:n", MIN_LINE_BATCHES))  # the average alone: as many as its line saw
        return float(m[f"batch_ms:{lane}"]), float(m.get(f"batch_dev_ms:{lane}", 0.0)), n
    return None


def _baseline(m: Mapping[str, float], lane: str, tokens: float | None) -> tuple[float, float] | None:
    if f"base_ms:{lane}" not in m:
        return None
    at = float(tokens if tokens is not None else m[f"base_tokens:{lane}"])
    central = float(m[f"base_ms:{lane}"]) + float(m[f"base_ms_per_token:{lane}"]) * at
    return central, central * BASELINE_DEVIATION


def freshness(m: Mapping[str, float], lane: str) -> float:
    """How much the lane's measurements still count against its baseline: 1 just after a batch, halving
    every STALE_HALF_LIFE_S without one."""
    measured_at, now = m.get(f"measured_at:{lane}"), m.get("now_s")
    if measured_at is None or now is None:
        return 1.0
    return 0.5 ** (max(0.0, float(now) - float(measured_at)) / STALE_HALF_LIFE_S)


def _estimate(m: Mapping[str, float], lane: str, tokens: int | None) -> tuple[float, float] | None:
    """(central, deviation) of a batch of the lane with these padded tokens, by the rules of the module."""
    measured, base = _measured(m, lane, tokens), _baseline(m, lane, tokens)
    if measured is None:
        return base
    central, deviation, batches = measured
    if base is None:
        return central, deviation
    if batches < MIN_LINE_BATCHES:
        # A first batch or two says little about the next: the baseline counts as one more batch. One
        # faster than the baseline does not lower the plan; one slower (a cold start's first batches run
        # while the web answers the burst that brought them) raises it by its share.
        if base[0] > central:
            central, deviation = base
        else:
            central = (base[0] + batches * central) / (batches + 1)
    weight = freshness(m, lane)
    return weight * central + (1 - weight) * base[0], weight * deviation + (1 - weight) * base[1]


def batch_estimate_ms(measurements: Mapping[str, float], lane: str, tokens: int | None = None) -> float:
    """How long a batch of this lane may take: likely, not just on average (0 while nothing is known).

    With `tokens` (its padded prompt tokens) and a line measured: the line there plus twice the
    deviation from the line. Otherwise the lane's moving average plus twice its mean deviation, as TCP
    plans round trips (RFC 6298). The deviation counts at most DEVIATION_CAP of the central value."""
    found = _estimate(measurements, lane, tokens)
    if found is None:
        return 0.0
    central, deviation = found
    return central + 2 * min(deviation, central * DEVIATION_CAP)


def central_estimate_ms(measurements: Mapping[str, float], lane: str, tokens: int | None = None) -> float:
    """How long a batch of this lane takes as things stand, without the margin (0 while nothing is known)."""
    found = _estimate(measurements, lane, tokens)
    return found[0] if found else 0.0


def tokens_per_job(measurements: Mapping[str, float], lane: str) -> float | None:
    """The padded prompt tokens a job of this lane brings to its batch, on recent average (before any batch
    ran, as the baseline's typical job)."""
    return measurements.get(f"job_tokens:{lane}", measurements.get(f"base_job_tokens:{lane}"))


def output_extra_ms(measurements: Mapping[str, float], lane: str, max_new_tokens: int | None) -> float:
    """How much longer than the lane's usual batch a batch takes when one of its jobs may write
    max_new_tokens: the decoding steps past those the lane's batches usually take (measured, else the
    baseline's), at the lane's time per step. 0 for a job that writes no more than usual, and while
    neither is known."""
    usual = decoding(measurements, lane)
    if not max_new_tokens or usual is None:
        return 0.0
    steps, step_ms = usual
    return max(0.0, max_new_tokens - steps) * step_ms


def decoding(measurements: Mapping[str, float], lane: str) -> tuple[float, float] | None:
    """(steps, ms per step) of the decoding a lane's batches usually do: measured, else the baseline's; None
    while neither is known."""
    steps = measurements.get(f"steps:{lane}", measurements.get(f"base_steps:{lane}"))
    step_ms = measurements.get(f"step_ms:{lane}", measurements.get(f"base_step_ms:{lane}"))
    return None if steps is None or step_ms is None else (float(steps), float(step_ms))
