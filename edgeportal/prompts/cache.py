"""The prompt cache in Redis: answers repeats without the model. Its key also groups identical jobs that share
one run (single flight: edgeportal.jobs.services.flight_answer). Its Redis keys are the store's (inference.store)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cache

from django.conf import settings

from edgeportal.core.queueing import model_catalog, scheduler_settings, web_store
from inference.model_files import ModelConfigError, resolve_model_path


@dataclass(frozen=True)
class CachedResult:
    output: str
    prompt_tokens: int
    output_tokens: int
    job_id: int
    finish_reason: str = ""  # "" in entries cached before it was kept


@cache
def model_identity(spec: str, dtype: str) -> str:
    """Which model answers: the model file's name, size and date, and the dtype the web is told (EDGE_DTYPE).
    A new model (or a new release of the default one) never answers from the old one's cache. Not the engine
    or the weights a worker chose at start (inference.engine_choice, unknown here): their greedy outputs are
    the reference's on about 98 % of prompts, and an entry ends with its time to live."""
    try:
        path = resolve_model_path(spec or None)
    except ModelConfigError:
        return f"{spec}:{dtype}"
    stat = (path / "config.json" if path.is_dir() else path).stat()
    return f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}:{dtype}"


def cache_key(
    *,
    prompt: str,
    system_prompt: str,
    max_new_tokens: int,
    template_version: int | None,
    model: str | None = None,
    decoding: str = "",
) -> str:
    """The key of a prompt's answer: the prompt, its settings and which weights answer it (each model its own).
    decoding: the options that change a greedy output (stop strings, a raw prompt), as Decoding.to_json."""
    catalog = model_catalog()
    spec = catalog.spec_of(model or catalog.default)
    identity = [prompt, system_prompt, max_new_tokens, model_identity(spec, settings.EDGE_DTYPE), template_version]
    if decoding:  # appended only when set: every plain job keeps the key it had
        identity.append(decoding)
    return hashlib.sha256(json.dumps(identity, ensure_ascii=False).encode()).hexdigest()


def cache_get(key: str) -> CachedResult | None:
    raw = web_store().cache_result_get(key)
    return CachedResult(**json.loads(raw)) if raw else None


def cache_put(key: str, result: CachedResult) -> None:
    ttl_s = scheduler_settings().cache_ttl_s  # tuned live by admins; 0 stores nothing
    if ttl_s:
        web_store().cache_result_set(key, json.dumps(asdict(result)), ttl_s)


def cache_clear() -> int:
    """Forget every cached answer: the exact cache's and the semantic cache's (prompts.semantic_cache)."""
    return web_store().cache_entries_delete()
