"""The scheduler's settings: each one's range and default, read from the environment, with live overrides.

Values outside a setting's range are refused with a message naming it, never clamped silently.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from inference.integers import IntegerError, parse_int
from inference.lanes import Lane, Priority
from inference.messages import gettext_noop as _

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setting:
    name: str
    default: int
    low: int
    high: int
    label: str
    unit: str = "ms"


# Labels and units are marked for translation (_ only marks them: the web side translates what it shows).
SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting("window_ms", 60, 0, 10_000, _("Batch window (the maximum, if adaptive)")),
        Setting("max_batch_size", 8, 1, 256, _("Jobs per batch"), _("jobs")),
        Setting("max_batch_tokens", 4096, 16, 1_000_000, _("Short lane: padded prompt tokens per batch"), _("tokens")),
        Setting("long_prompt_tokens", 256, 1, 100_000, _("Long lane: prompts from this many tokens"), _("tokens")),
        Setting("long_output_tokens", 256, 1, 100_000, _("Long lane: jobs that may write this many tokens"),
                _("tokens")),
        Setting("long_batch_tokens", 1024, 16, 1_000_000, _("Long lane: padded prompt tokens per batch"), _("tokens")),
        Setting("long_chunk_tokens", 256, 0, 100_000, _("Long lane: prefill chunk, then short jobs (0: off)"),
                _("tokens")),
        Setting("long_share_pct", 50, 1, 100, _("Long lane: most of a shared worker's time until its deadline"), "%"),
        Setting("default_deadline_ms", 10_000, 100, 3_600_000, _("Default deadline")),
        Setting("long_deadline_ms", 30_000, 100, 3_600_000, _("Long lane: default deadline")),
        Setting("max_deadline_ms", 300_000, 100, 86_400_000, _("Longest deadline a request may ask for")),
        Setting("queue_limit", 256, 1, 100_000, _("Queue limit (jobs waiting in a pool, all lanes)"), _("jobs")),
        Setting("source_share_pct", 50, 1, 100, _("Most of the queue limit one sender's waiting jobs may fill"), "%"),
        Setting("priority_weight_high_ms", 8_000, 0, 3_600_000, _("Head start of high priority")),
        Setting("priority_weight_normal_ms", 4_000, 0, 3_600_000, _("Head start of normal priority")),
        Setting("priority_weight_low_ms", 0, 0, 3_600_000, _("Head start of low priority")),
        Setting("cache_ttl_s", 3600, 0, 30 * 86_400, _("Prompt cache lifetime (0: off)"), "s"),
        Setting("adaptive_window", 0, 0, 1, _("Adaptive window (0 off, 1 on)"), ""),
    ]
}  # fmt: skip


class SettingError(ValueError):
    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def parse_setting(name: str, raw: object) -> int:
    """A setting's value (an int, or its ASCII digits as Redis and forms hold them) within its range."""
    if name not in SETTINGS:
        raise SettingError(name, "unknown setting")
    setting = SETTINGS[name]
    try:
        return parse_int(raw, field=name, low=setting.low, high=setting.high)
    except IntegerError as error:
        raise SettingError(name, _without_field(error)) from None


def env_int(
    name: str, default: int, *, low: int | None, high: int | None, environ: Mapping[str, str] = os.environ
) -> int:
    """An integer from the environment; surrounding whitespace (an environment file's) is ignored."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse_int(raw, field=name, low=low, high=high)
    except IntegerError as error:
        raise SettingError(name, _without_field(error)) from None


def env_bool(name: str, default: str, environ: Mapping[str, str] = os.environ) -> bool:
    """A yes/no from the environment (1/true/yes/on, 0/false/no/off or empty); anything else is refused."""
    value = environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{name} must be a boolean (true/false), got {value!r}")


def _without_field(error: IntegerError) -> str:
    """SettingError puts the name in front itself."""
    return error.message.removeprefix(f"{error.field} ")


@dataclass(frozen=True)
class SchedulerSettings:
    window_ms: int = SETTINGS["window_ms"].default
    max_batch_size: int = SETTINGS["max_batch_size"].default
    max_batch_tokens: int = SETTINGS["max_batch_tokens"].default
    long_prompt_tokens: int = SETTINGS["long_prompt_tokens"].default
    long_output_tokens: int = SETTINGS["long_output_tokens"].default
    long_batch_tokens: int = SETTINGS["long_batch_tokens"].default
    long_chunk_tokens: int = SETTINGS["long_chunk_tokens"].default
    long_share_pct: int = SETTINGS["long_share_pct"].default
    default_deadline_ms: int = SETTINGS["default_deadline_ms"].default
    long_deadline_ms: int = SETTINGS["long_deadline_ms"].default
    max_deadline_ms: int = SETTINGS["max_deadline_ms"].default
    queue_limit: int = SETTINGS["queue_limit"].default
    source_share_pct: int = SETTINGS["source_share_pct"].default
    priority_weight_high_ms: int = SETTINGS["priority_weight_high_ms"].default
    priority_weight_normal_ms: int = SETTINGS["priority_weight_normal_ms"].default
    priority_weight_low_ms: int = SETTINGS["priority_weight_low_ms"].default
    cache_ttl_s: int = SETTINGS["cache_ttl_s"].default
    adaptive_window: int = SETTINGS["adaptive_window"].default

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> SchedulerSettings:
        """EDGE_WINDOW_MS, EDGE_MAX_BATCH_SIZE, ...: a bad value stops the process with a clear message."""
        values = {}
        for name in SETTINGS:
            raw = environ.get(f"EDGE_{name.upper()}", "").strip()
            if raw:
                try:
                    values[name] = parse_setting(name, raw)
                except SettingError as error:
                    raise SettingError(f"EDGE_{name.upper()}", error.message) from None
        return cls(**values)

    def overridden(self, overrides: Mapping[str, str]) -> SchedulerSettings:
        """Apply live overrides from Redis; a bad stored value is logged and ignored, never fatal mid-run."""
        values = asdict(self)
        for name, raw in overrides.items():
            if name.startswith("_"):  # bookkeeping such as _version
                continue
            try:
                values[name] = parse_setting(name, raw)
            except SettingError as error:
                log.warning("ignoring scheduler override %s", error)
        return SchedulerSettings(**values)

    def source_share(self) -> int | None:
        """How many jobs one sender may have waiting: its share of the queue limit (at least one); None
        at 100 %, where only the queue limit applies."""
        if self.source_share_pct >= 100:
            return None
        return max(1, self.queue_limit * self.source_share_pct // 100)

    def head_start_ms(self, priority: str) -> int:
        return getattr(self, f"priority_weight_{Priority(priority)}_ms")

    def default_deadline_for(self, lane: str) -> int:
        """A job's deadline when its request, source and template name none: a long prompt has its own,
        longer by default, so its batch can stand aside for short ones (see planning.short_may_go)."""
        deadline = self.long_deadline_ms if lane == Lane.LONG else self.default_deadline_ms
        return min(deadline, self.max_deadline_ms)

    def lane_for(self, prompt_tokens: int, max_new_tokens: int = 0) -> Lane:
        """A long prompt, or a long output allowed, goes to the long lane: its batches stand aside for short
        ones between their steps (decoding included), so a 1 000-token answer does not hold a short batch."""
        if prompt_tokens >= self.long_prompt_tokens or max_new_tokens >= self.long_output_tokens:
            return Lane.LONG
        return Lane.SHORT

    def batch_tokens(self, lane: str) -> int:
        return self.long_batch_tokens if lane == Lane.LONG else self.max_batch_tokens
