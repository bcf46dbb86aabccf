"""Rows kept by each web process between requests (core.lookups): a source by its token, the blocked patterns."""

import time
from types import SimpleNamespace

import pytest

from edgeportal.core import lookups
from edgeportal.core.queueing import web_store
from edgeportal.prompts.models import BlockedPattern
from edgeportal.prompts.selectors import blocked_patterns
from edgeportal.sources.models import Source
from edgeportal.sources.services import source_authenticate

pytestmark = pytest.mark.django_db(transaction=True)


def authenticated(token: str) -> Source | None:
    return source_authenticate(authorization=f"Bearer {token}")


def written_elsewhere(**fields) -> None:
    """What another web process's change looks like here before it is counted: the row changed, no signal."""
    Source.objects.update(**fields)


def test_a_source_is_kept_until_another_process_counts_a_change(source_token):
    assert authenticated(source_token).is_active
    written_elsewhere(is_active=False)
    assert authenticated(source_token) is not None  # kept: no query
    web_store().lookups_changed()  # the other process, once its change committed
    assert authenticated(source_token) is None


def test_a_change_saved_here_is_seen_at_once_and_counted_for_the_others(source_token):
    before = web_store().lookups_version()
    source = authenticated(source_token)
    source.is_active = False
    source.save()
    assert authenticated(source_token) is None
    assert web_store().lookups_version() != before


def test_each_request_gets_its_own_copy_of_the_kept_source(source_token):
    first = authenticated(source_token)
    first.name = "changed by one request"
    assert authenticated(source_token).name == "camera-c3"


def test_unknown_tokens_are_not_kept(source_token):
    lookups._entries.clear()
    for attempt in range(20):
        assert authenticated(f"wrong-{attempt}") is None
    authenticated(source_token)
    assert len(lookups._entries) == 1


def test_a_kept_entry_is_trusted_for_a_bounded_time(source_token, monkeypatch):
    authenticated(source_token)
    written_elsewhere(is_active=False)
    later = time.monotonic() + 31  # the change was never counted (Redis down at that moment)
    monkeypatch.setattr(lookups, "time", SimpleNamespace(monotonic=lambda: later))
    assert authenticated(source_token) is None


def test_a_time_of_zero_reads_the_database_every_time(source_token, settings):
    settings.EDGE_LOOKUP_TTL_S = 0
    authenticated(source_token)
    written_elsewhere(is_active=False)
    assert authenticated(source_token) is None


def test_without_redis_a_token_is_checked_in_the_database(source_token, redis_down):
    assert authenticated(source_token).name == "camera-c3"
    written_elsewhere(is_active=False)
    assert authenticated(source_token) is None


def test_blocked_patterns_follow_saves_here_and_counts_from_elsewhere():
    assert blocked_patterns() == ()
    pattern = BlockedPattern.objects.create(pattern=r"\bpassword\b")
    assert blocked_patterns() == (r"\bpassword\b",)
    BlockedPattern.objects.filter(pk=pattern.pk).update(pattern=r"\bsecret\b")
    assert blocked_patterns() == (r"\bpassword\b",)
    web_store().lookups_changed()
    assert blocked_patterns() == (r"\bsecret\b",)
    pattern.delete()
    assert blocked_patterns() == ()


def test_a_submission_reads_the_patterns_version_with_its_settings(queue):
    from edgeportal.jobs.entry import JobRejected, job_submit

    def submit(text):
        return job_submit(prompt=text, allow_free_prompt=True)

    submit("tell the secret code of press 4")
    BlockedPattern.objects.bulk_create([BlockedPattern(pattern=r"\bsecret\b")])  # another process, no signal here
    submit("tell the secret code of press 5")  # kept: the change is not counted yet
    web_store().lookups_changed()
    with pytest.raises(JobRejected) as refused:
        submit("tell the secret code of press 6")
    assert refused.value.code == "blocked_pattern"


def test_the_admins_disable_action_is_counted_for_every_process(client, admin_user, source_token):
    assert authenticated(source_token) is not None  # kept
    before = web_store().lookups_version()
    client.force_login(admin_user)
    source = Source.objects.get()
    client.post("/admin/sources/source/", {"action": "disable", "_selected_action": [source.pk]})
    assert web_store().lookups_version() != before  # update() sends no signal: the action counts it
    assert authenticated(source_token) is None
