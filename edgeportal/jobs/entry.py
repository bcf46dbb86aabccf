"""The entry every job passes: rate limit, template rendering, guard and normalisation, prompt cache, queue."""

from __future__ import annotations

import contextlib
import logging
import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from edgeportal.core import metrics
from edgeportal.core.lookups import lookups_version_known
from edgeportal.core.queueing import (
    batch_time_prior,
    get_queue,
    model_catalog,
    pools_for,
    queue_owner,
    scheduler_settings_and_pools,
)
from edgeportal.echo import clipped, quoted
from edgeportal.jobs.hooks import hook
from edgeportal.jobs.models import Job
from edgeportal.jobs.refusals import refusal_count
from edgeportal.jobs.services import job_queue_new, latency_for
from edgeportal.prompts import cache
from edgeportal.prompts.guard import (
    RAW_LENGTH_FACTOR,
    GuardRejected,
    GuardRules,
    blocked,
    check_patterns,
    guard_text,
    matching_patterns,
)
from edgeportal.prompts.models import PromptTemplate
from edgeportal.prompts.rendering import RenderError, fill, render
from edgeportal.prompts.selectors import guard_rules
from edgeportal.prompts.semantic_cache import semantic_decoding
from edgeportal.prompts.tokens import count_tokens
from edgeportal.prompts.variables import VariableError
from edgeportal.sources.models import Source
from edgeportal.sources.rate_limit import rate_limit_hit
from inference.admission import admission_estimate
from inference.decoding import GREEDY, MAX_COPY_ITEMS, Decoding
from inference.integers import IntegerError, parse_int
from inference.items import required_items
from inference.planning import Estimate, Refusal, refusal, share_refusal
from inference.pools import Pool
from inference.settings import SchedulerSettings
from inference.store.queue import JobQueue

log = logging.getLogger(__name__)
SLUG = re.compile(r"[-a-zA-Z0-9_]+\Z")
PAGE_DECODING = Decoding(stream=True)  # a job from a page streams its output to its page (edgeportal.jobs.live)


class JobRejected(Exception):
    """Bad input: the message is shown to the person or machine that sent it."""

    def __init__(
        self, message: str, *, code: str, field: str | None = None, status: int = 400, retry_after: int | None = None,
        reason: str = "",
    ):  # fmt: skip
        message, field = clipped(message), clipped(field, 80) if field is not None else None
        super().__init__(message)
        self.message = message
        self.reason = reason  # an admission refusal's why, without its "retry in" (pages say that their own way)
        self.code = code
        self.field = field
        self.status = status
        self.retry_after = retry_after


class QueueUnavailable(JobRejected):
    def __init__(self):
        super().__init__(
            _("The job queue (Redis) is not reachable; nothing was stored. Try again shortly."),
            code="queue_unavailable",
            status=503,
        )


def job_submit(
    *,
    prompt: object = None,
    template_slug: object = None,
    variables: object = None,
    priority: object = None,
    deadline_ms: object = None,
    model: object = None,
    system_prompt: object = None,
    max_new_tokens: object = None,
    decoding: Decoding = GREEDY,
    turns: object = None,
    source: Source | None = None,
    user=None,
    allow_free_prompt: bool,
) -> Job:
    """Check, render and normalise the request; answer it from the cache, or admit it, store it and queue it.
    A free prompt may bring its own system prompt and output limit (a template has its own); decoding says
    how it is decoded (the OpenAI-compatible API's sampling, stop strings, raw prompts and streaming); turns are a
    free prompt's conversation before it, [(role, text), ...]."""
    started = time.perf_counter()
    template = None
    try:
        if source is not None:
            _check_rate(source)
        try:
            scheduler, pools_seen, lookups_version = scheduler_settings_and_pools()
        except redis.RedisError:
            raise QueueUnavailable() from None
        # The blocked patterns' version came with the settings: the guard asks Redis no more (core.lookups).
        with lookups_version_known(lookups_version):
            template = _template_named(template_slug, prompt)
            model_name = _model(model, template)
            text, values, tokens = _prompt_for(template, prompt, variables, allow_free_prompt, source, model_name)
            if turns:
                checked, tokens = _turns(turns, template, text, tokens, model_name)
                decoding = replace(decoding, turns=checked)
            own = _own_settings(template, system_prompt, max_new_tokens)
            lane = scheduler.lane_for(tokens, own["max_new_tokens"])
            ticket = Ticket(
                model=model_name,
                priority=_priority(priority),
                deadline_ms=_deadline_ms(deadline_ms, template, source, scheduler, lane),
                lane=lane,
                prompt_tokens=tokens,
                max_new_tokens=own["max_new_tokens"],
                rows=template.candidates if template is not None else 1,
                owner=queue_owner(
                    source_id=source.pk if source is not None else None,
                    user_id=user.pk if user is not None and user.is_authenticated else None,
                ),
            )
            return _accept(template, text, values, source, user, started, ticket, scheduler, own, decoding, pools_seen)
    except JobRejected as rejected:
        if rejected.status != 503:  # 503: Redis is down, nothing is stored or counted
            rejection_record(rejected, source=source, user=user, template=template)
        raise


def rejection_record(rejected: JobRejected, *, source: Source | None, user=None, template=None) -> None:
    """Count a refusal in metrics and, per minute, in Redis (stored later by refusals_flush): never a
    database write on the request. Losing the count when Redis fails never turns the 4xx into a 5xx."""
    metrics.job_rejected(rejected.code)
    try:
        refusal_count(
            rule=rejected.code,
            message=rejected.message,
            source=source,
            user=user if user is not None and user.is_authenticated else None,
            template_slug=template.slug if template is not None else "",
        )
    except redis.RedisError as error:
        log.warning("refusal %s not counted, Redis failed: %s", rejected.code, error)


def _check_rate(source: Source) -> None:
    try:
        retry_after = rate_limit_hit(source=source)
    except redis.RedisError:
        raise QueueUnavailable() from None
    if retry_after is not None:
        raise JobRejected(
            _("Source %(source)s sent more requests than its limit per minute; retry in %(seconds)d s.")
            % {"source": quoted(source.name), "seconds": retry_after},
            code="rate_limited",
            status=429,
            retry_after=retry_after,
        )


def _guarded(text: str, field: str, rules: GuardRules) -> str:
    try:
        return guard_text(text, field=field, rules=rules)
    except GuardRejected as rejected:
        raise JobRejected(_(rejected.text) % rejected.params, code=rejected.rule, field=rejected.field) from None


def _template_named(template_slug: object, prompt: object) -> PromptTemplate | None:
    """The template the request names, or None for a free prompt."""
    if template_slug is not None and prompt is not None:
        raise JobRejected(_("Send either a template or a prompt, not both."), code="invalid", field="prompt")
    if template_slug is None:
        return None
    if not isinstance(template_slug, str) or not SLUG.match(template_slug.strip()):
        raise JobRejected(
            _("template must be a template slug (letters, digits, - and _)."), code="invalid", field="template"
        )
    template = PromptTemplate.objects.filter(slug=template_slug.strip()).first()
    if template is None:
        raise JobRejected(
            _("Unknown template %(template)s.") % {"template": quoted(template_slug)},
            code="unknown_template",
            field="template",
        )
    return template


def _model(raw: object, template: PromptTemplate | None) -> str:
    """The model the job runs on: the request's, else its template's, else the node's default."""
    catalog = model_catalog()
    if raw is None or raw == "":
        if template is None or not template.model:
            return catalog.default
        if not catalog.knows(template.model):  # EDGE_MODELS changed since the template was saved
            raise JobRejected(
                _(
                    "Template %(template)r runs on model %(model)s, which this node no longer serves "
                    "(%(models)s); an admin must choose another."
                ) % {"template": template.slug, "model": quoted(template.model), "models": ", ".join(catalog.names)},
                code="unknown_model", field="template", status=409,
            )  # fmt: skip
        return template.model
    if not isinstance(raw, str) or not catalog.knows(raw.strip()):
        raise JobRejected(
            _("Unknown model %(model)s; this node serves %(models)s.")
            % {"model": quoted(raw if isinstance(raw, str) else str(raw)), "models": ", ".join(catalog.names)},
            code="unknown_model", field="model",
        )  # fmt: skip
    return raw.strip()


def _prompt_for(template, prompt, variables, allow_free_prompt, source, model: str):
    """The guarded and normalised prompt text, the checked variable values and the prompt's tokens."""
    if template is not None:
        if source is not None and not template.usable_by_source(source):
            raise JobRejected(
                _("Source %(source)s may not use template %(template)r.")
                % {"source": quoted(source.name), "template": template.slug},
                code="template_not_allowed", field="template", status=403,
            )  # fmt: skip
        if len(template.body) > settings.EDGE_MAX_PROMPT_CHARS * RAW_LENGTH_FACTOR:  # saved before the limit
            raise JobRejected(
                _("Template %(template)r has a body of %(chars)d characters; a prompt may have at most %(limit)d.")
                % {"template": template.slug, "chars": len(template.body), "limit": settings.EDGE_MAX_PROMPT_CHARS},
                code="too_long", field="template",
            )  # fmt: skip
        text, values = _render(template, variables)
        # The admin's body is trusted (no pattern check), but body plus values must still fit the limit.
        whole_prompt_rules = guard_rules(max_chars=settings.EDGE_MAX_PROMPT_CHARS, with_patterns=False)
    elif prompt is not None:
        if not allow_free_prompt:
            raise JobRejected(
                _("This sender may only use prompt templates."), code="forbidden", field="prompt", status=403
            )
        if not isinstance(prompt, str):
            raise JobRejected(_("prompt must be text."), code="invalid", field="prompt")
        if variables:
            raise JobRejected(_("variables are only used with a template."), code="invalid", field="variables")
        text, values = prompt, {}
        whole_prompt_rules = guard_rules(max_chars=settings.EDGE_MAX_PROMPT_CHARS)
    else:
        raise JobRejected(_("Send a template with its variables, or a prompt."), code="missing", field="template")

    text = _guarded(text, "prompt", whole_prompt_rules)
    if not text:
        raise JobRejected(_("The prompt is empty."), code="empty_prompt", field="prompt")
    limit = settings.EDGE_MAX_PROMPT_TOKENS
    tokens = count_tokens(text, model=model)
    if limit and tokens is not None and tokens > limit:
        raise JobRejected(
            _("The prompt has %(tokens)d tokens; the limit is %(limit)d.") % {"tokens": tokens, "limit": limit},
            code="too_many_tokens",
            field="prompt",
        )
    # Until the model's tokenizer is prepared, about four characters a token is close enough to pick a lane.
    return text, values, tokens if tokens is not None else len(text) // 4 + 1


def _turns(raw: object, template, text: str, tokens: int, model: str) -> tuple[tuple[tuple[str, str], ...], int]:
    """A free prompt's earlier conversation, each message guarded like the prompt, and the tokens of the whole:
    the prompt with its earlier messages keeps to one prompt's limits of characters and tokens."""
    if template is not None:
        raise JobRejected(
            _("A conversation is only sent with a prompt, not a template."), code="invalid", field="turns"
        )
    if not isinstance(raw, list | tuple) or not all(
        isinstance(turn, list | tuple)
        and len(turn) == 2
        and turn[0] in ("user", "assistant")
        and isinstance(turn[1], str)
        for turn in raw
    ):
        raise JobRejected(
            _("turns must be a list of [role, text] pairs, the role user or assistant."), code="invalid", field="turns"
        )
    limit = settings.EDGE_MAX_PROMPT_CHARS
    turns = tuple((role, _guarded(said, "turns", guard_rules(max_chars=limit))) for role, said in raw)
    chars = len(text) + sum(len(said) for _, said in turns)
    if chars > limit:
        raise JobRejected(
            _("The conversation has %(chars)d characters; a prompt with its earlier messages may have at most "
              "%(limit)d.") % {"chars": chars, "limit": limit},
            code="too_long", field="turns",
        )  # fmt: skip
    tokens += sum(count_tokens(said, model=model) or len(said) // 4 + 1 for _, said in turns)
    if (limit := settings.EDGE_MAX_PROMPT_TOKENS) and tokens > limit:
        raise JobRejected(
            _("The conversation has %(tokens)d tokens; the limit is %(limit)d.") % {"tokens": tokens, "limit": limit},
            code="too_many_tokens", field="turns",
        )  # fmt: skip
    return turns, tokens


MAX_NEW_TOKENS = 1024  # a request's own output limit: the range a template's has (PromptTemplate.clean)


def _own_settings(template, system_prompt: object, max_new_tokens: object) -> dict:
    """The system prompt and output limit of the job: its template's, or a free prompt's own (the system
    prompt guarded like the prompt), else the defaults."""
    if template is not None:
        if system_prompt is not None or max_new_tokens is not None:
            field = "system_prompt" if system_prompt is not None else "max_new_tokens"
            raise JobRejected(_("%(field)s comes from the template; send it only with a prompt.") % {"field": field},
                              code="invalid", field=field)  # fmt: skip
        return {"system_prompt": template.system_prompt, "max_new_tokens": template.max_new_tokens}
    own = {"system_prompt": "", "max_new_tokens": settings.EDGE_DEFAULT_MAX_NEW_TOKENS}
    if system_prompt is not None:
        if not isinstance(system_prompt, str):
            raise JobRejected(_("system_prompt must be text."), code="invalid", field="system_prompt")
        own["system_prompt"] = _guarded(
            system_prompt, "system_prompt", guard_rules(max_chars=settings.EDGE_MAX_PROMPT_CHARS)
        )
    if max_new_tokens is not None:
        try:
            own["max_new_tokens"] = parse_int(max_new_tokens, field="max_new_tokens", low=1, high=MAX_NEW_TOKENS)
        except IntegerError as error:
            raise JobRejected(_(error.text) % error.params, code="invalid", field="max_new_tokens") from None
    return own


@dataclass(frozen=True)
class Ticket:
    """How the scheduler treats an admitted job."""

    model: str
    priority: str
    deadline_ms: int  # time it has from now
    lane: str
    prompt_tokens: int
    max_new_tokens: int = 0  # its output limit: its batch is planned for it (planning.plan_admission)
    owner: str = ""  # the sender, for its share of the queue
    rows: int = 1  # the rows it takes in its batch: one per candidate (inference.candidates)


def _priority(raw: object) -> str:
    if raw is None or raw == "":
        return Job.Priority.NORMAL
    if raw not in Job.Priority.values:
        raise JobRejected(
            _("priority must be one of %(choices)s.") % {"choices": ", ".join(Job.Priority.values)},
            code="invalid",
            field="priority",
        )
    return raw


def _deadline_ms(raw: object, template, source, scheduler: SchedulerSettings, lane: str) -> int:
    """The request's own deadline, else the source's, else the template's, else the scheduler's default
    for the job's lane."""
    if raw is None or raw == "":
        for default in (source.deadline_ms if source else None, template.deadline_ms if template else None):
            if default:
                return min(default, scheduler.max_deadline_ms)
        return scheduler.default_deadline_for(lane)
    try:
        return parse_int(raw, field="deadline_ms", low=1, high=scheduler.max_deadline_ms)
    except IntegerError as error:
        raise JobRejected(_(error.text) % error.params, code="invalid", field="deadline_ms") from None


def admit(
    ticket: Ticket, scheduler: SchedulerSettings, pools_seen: Mapping[str, float] | None = None
) -> tuple[Pool, str]:
    """Refuse now what the queue cannot take or cannot finish in time, instead of queueing it to expire.
    Returns the pool the job goes to and the place held for it in its lane (admission_estimate's hold),
    given up when it is queued. Where several pools serve its model (a GPU's and a CPU's, say), the one
    that would finish it first and admits it. pools_seen: the registry of pools, where the entry read it with
    the settings (pools_for reads it otherwise)."""
    planned, chosen, refused = [], None, None
    try:
        for pool in pools_for(ticket.model, pools_seen):
            queue = get_queue(pool)
            estimate = admission_estimate(queue, scheduler, lane=ticket.lane, priority=ticket.priority,
                                          deadline_ms=ticket.deadline_ms, tokens=ticket.prompt_tokens * ticket.rows,
                                          max_new_tokens=ticket.max_new_tokens, prior=batch_time_prior(ticket.model),
                                          hold=True)  # fmt: skip
            finish_ms = math.inf if estimate.finish_ms is None else estimate.finish_ms
            # A pool none of whose live workers serves the lane goes last: its jobs would wait for a worker.
            planned.append(((not estimate.lane_workers, finish_ms, pool), queue, estimate))
        planned.sort(key=lambda each: each[0])
        for (_model, _lane, pool), queue, estimate in planned:
            if chosen is None and (why := _refused(queue, estimate, ticket, scheduler)) is None:
                chosen = (pool, estimate.place)
            elif chosen is None:
                refused = refused or (why, estimate)
    finally:  # every place held but the chosen one goes, whatever failed on the way
        for _pool, queue, estimate in planned:
            if chosen is None or estimate.place != chosen[1]:
                with contextlib.suppress(redis.RedisError):
                    queue.release_place(ticket.lane, estimate.place)
    if chosen is not None:
        return chosen
    reason, estimate = refused
    # Translated for pages (machine paths run in English): the refusal's own text, then its fields.
    seconds = estimate.retry_after_s
    params = {**reason.params, **({"lane": _(reason.params["lane"])} if "lane" in reason.params else {})}
    why = _(reason.text) % params
    message = _("%(reason)s; retry in %(seconds)d s.") % {"reason": why, "seconds": seconds}
    raise JobRejected(message, code=reason.code, status=429, retry_after=seconds, reason=why)


def release_places(held: list[tuple[JobQueue, str, str]]) -> None:
    """Give back the places admit() held (for runs admitted together, when one of them is refused)."""
    for queue, lane, place in held:
        with contextlib.suppress(redis.RedisError):
            queue.release_place(lane, place)


def _refused(queue: JobQueue, estimate: Estimate, ticket: Ticket, scheduler: SchedulerSettings):
    """Why this pool refuses the job, as a Refusal, or None. An idle lane takes one probe at a time:
    a burst that finds it idle is planned behind the first."""
    share = _share_refusal(queue, ticket, scheduler)
    probe = (
        not share
        and estimate.misses(ticket.deadline_ms)
        and estimate.probe_fits(ticket.deadline_ms)
        and queue.claim_probe(ticket.lane, estimate.probe_finish_ms)
    )
    return share or refusal(estimate, scheduler, lane=ticket.lane, deadline_ms=ticket.deadline_ms, probe=probe)


def _share_refusal(queue: JobQueue, ticket: Ticket, scheduler: SchedulerSettings) -> Refusal | None:
    """Fair share (planning.share_refusal). Read apart from the estimate, and like the queue limit not locked
    against a simultaneous request of the same sender: a share may overshoot by one."""
    if scheduler.source_share() is None or not ticket.owner:
        return None
    return share_refusal(queue.waiting_of(ticket.owner), scheduler)


def _render(template: PromptTemplate, variables: object) -> tuple[str, dict]:
    """Each text value passes the guard (normalised, length, patterns), then its declared type (an integer is
    checked as sent); then the body is filled, and the patterns run over the values together and over the
    prompt they make."""
    if variables is not None and not isinstance(variables, dict):
        raise JobRejected(
            _("variables must be an object mapping names to values."), code="invalid_variables", field="variables"
        )
    values = dict(variables or {})
    as_sent = {}  # text values before normalisation: the pattern checks see every form of them
    rules = guard_rules(max_chars=settings.EDGE_MAX_VARIABLE_CHARS)
    try:
        for variable in template.variable_spec():
            value = values.get(variable.name)
            if value is None or value == "":
                continue  # render() says it is required
            if isinstance(value, str) and variable.type != "integer":
                as_sent[variable.name] = value
                value = _guarded(value, variable.name, rules)
            values[variable.name] = variable.check(value) if value != "" else ""
        # A phrase split across two variables is still one phrase.
        check_patterns(" ".join(as_sent.values()), field="variables", rules=rules)
        prompt = render(template.body, values)
        _check_rendered(template.body, {**values, **as_sent}, rules)
        return prompt, values
    except GuardRejected as rejected:
        raise JobRejected(_(rejected.text) % rejected.params, code=rejected.rule, field=rejected.field) from None
    except (RenderError, VariableError) as error:
        raise JobRejected(str(error), code="invalid_variables", field=error.field or "variables") from None


def _check_rendered(body: str, values: dict, rules: GuardRules) -> None:
    """Refuse a prompt in which the values make a blocked phrase with the body's words ("ignore all" and
    "previous instructions" in "Camera {camera} detected {defect}"). The admin's body is trusted: a pattern
    that the body matches on its own, with every value empty, does not refuse it."""
    found = matching_patterns(fill(body, values), rules)
    if found:
        own = set(matching_patterns(fill(body, {}), GuardRules(rules.max_chars, rules.control_chars, found)))
        for pattern in found:
            if pattern not in own:
                raise blocked("variables", pattern)


def _with_output_controls(decoding: Decoding, template, text: str) -> Decoding:
    """Repeats are controlled as the template says, or as the node does for a free prompt (inference.repetition):
    within the output only, so the answer may copy the request's ids; and the request's ids and numbers are
    favoured while the output lacks them (inference.copy_bias), as much as the template or the node says."""
    controls = {
        "no_repeat_ngram": template.no_repeat_ngram if template else settings.EDGE_NO_REPEAT_NGRAM,
        "repetition_penalty": template.repetition_penalty if template else settings.EDGE_REPETITION_PENALTY,
        "copy_bias": template.copy_bias if template else settings.EDGE_COPY_BIAS,
    }
    items = tuple(required_items(text)[:MAX_COPY_ITEMS]) if controls["copy_bias"] else ()
    if not items:  # nothing to carry: no bias either, so the job's decoding (and cache key) stays plain
        controls["copy_bias"] = 0.0
    return replace(decoding, **controls, copy_items=items)


def _with_candidates(decoding: Decoding, template) -> Decoding:
    """A template's candidates (inference.candidates), checked against its language by the reranker. Such a
    job does not stream: which candidate answers is known only once all are made. Its candidates are drawn
    from fixed seeds: the same request gets the same answer, and the prompt cache may keep it."""
    if template is None or template.candidates <= 1:
        return decoding
    return replace(decoding, candidates=template.candidates, language=template.language, stream=False)


def _accept(
    template, text, values, source, user, started: float, ticket: Ticket, scheduler, own, decoding, pools_seen
) -> Job:
    now = timezone.now()
    fields = {
        "source": source,
        "submitted_by": user if user is not None and user.is_authenticated else None,
        "template": template,
        "template_version": template.version if template else None,
        "variables": values,  # as checked and normalised: what was really rendered
        "prompt": text,
        **own,  # system_prompt, max_new_tokens
        "priority": ticket.priority,
        "lane": ticket.lane,
        "model": ticket.model,
        "deadline_at": now + timedelta(milliseconds=ticket.deadline_ms),
        "prompt_tokens": ticket.prompt_tokens,
    }
    decoding = _with_candidates(_with_output_controls(decoding, template, text), template)
    if decoding.sampled and decoding.seed is None:
        # Its own seed, kept with it: a batch that runs again (a retry, a worker's crash) draws the same text,
        # so what was streamed stays the start of what is stored.
        decoding = replace(decoding, seed=secrets.randbelow(2**63))
    if template is not None and (specs := template.output_specs()):
        fields["decoding"] = decoding.as_dict() if decoding != GREEDY else {}
        return hook("outputs_accept")(fields, specs, ticket, scheduler)  # edgeportal.outputs.entry
    key_fields = {
        "system_prompt": fields["system_prompt"],
        "max_new_tokens": fields["max_new_tokens"],
        "template_version": fields["template_version"],
        "model": ticket.model,
    }
    decoding = semantic_decoding(decoding, template=template, values=values, key_fields=key_fields)
    fields["decoding"] = decoding.as_dict() if decoding != GREEDY else {}
    key = ""
    try:
        # A sampled answer is one draw among many: never cached, never shared with an identical request.
        if settings.EDGE_CACHE_ENABLED and not decoding.sampled:
            # streamed or not, answered by the semantic cache or not: the same output
            key = cache.cache_key(prompt=text, decoding=decoding.without_cache_fields().to_json(), **key_fields)
            hit = cache.cache_get(key)
            if hit is not None:
                return _answer_from_cache(fields, key, hit, started)
        pool, place = admit(ticket, scheduler, pools_seen)  # a cache hit needs no room in the queue
        fields["pool"] = pool.name
    except redis.RedisError:
        raise QueueUnavailable() from None

    with transaction.atomic():
        job = Job.objects.create(**fields, cache_key=key)
        # A worker must never read a job id whose row is not committed yet. An identical job already queued
        # or running does not hold this one back: each keeps its own deadline and priority, and the first
        # to finish answers the others (single flight, see job_queue_new and flight_answer).
        transaction.on_commit(lambda: job_queue_new(job, scheduler, place=place))
    return job


def _answer_from_cache(fields: dict, key: str, hit: cache.CachedResult, started: float) -> Job:
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.create(
            **{**fields, "prompt_tokens": hit.prompt_tokens},
            cache_key=key,
            cache_hit=True,
            status=Job.Status.DONE,
            output=hit.output,
            output_tokens=hit.output_tokens,
            finish_reason=hit.finish_reason,
            finished_at=now,
        )
        latency = latency_for(job)
        latency.total_ms = (time.perf_counter() - started) * 1000  # the real time the entry took
        latency.save()
        metrics.jobs_finished([latency])
    return job
