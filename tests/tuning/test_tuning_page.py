"""The admins' tuning page: ranges, audit, publication to Redis, worker status."""

import json
import time

import pytest
from django.db import OperationalError, connection

from edgeportal.core.queueing import get_settings_store
from edgeportal.tuning.models import SchedulerOverride, SettingChange
from edgeportal.tuning.services import settings_republish, settings_save
from inference.settings import SETTINGS

# Real commits: settings reach Redis only once the save has committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def form_values(**changes):
    values = {name: setting.default for name, setting in SETTINGS.items()}
    return {**values, **changes}


def test_saving_publishes_to_the_workers_and_records_who_changed_what(admin_client, admin_user):
    response = admin_client.post("/tuning/", form_values(window_ms=25, queue_limit=40), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "Saved 2 change(s) as version 1" in response.content.decode()
    settings, version = get_settings_store().current_with_version()
    assert (settings.window_ms, settings.queue_limit, version) == (25, 40, 1)
    changes = {c.name: c for c in SettingChange.objects.all()}
    assert set(changes) == {"window_ms", "queue_limit"}
    assert (changes["window_ms"].old_value, changes["window_ms"].new_value) == (60, 25)
    assert changes["window_ms"].user == admin_user and changes["window_ms"].version == 1
    assert "60 → 25" in response.content.decode()  # the audit list in the swapped fragment


def test_saving_unchanged_values_changes_nothing(admin_client):
    admin_client.post("/tuning/", form_values())
    assert SettingChange.objects.count() == 0
    assert get_settings_store().current_with_version()[1] == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("window_ms", "-5", "Must be between 0 and 10000 ms."),
        ("max_batch_size", "1000", "Must be between 1 and 256 jobs."),
        ("queue_limit", "lots", "Enter a whole number."),
        ("long_share_pct", "0", "Must be between 1 and 100 %."),  # a % in the message gave a 500
        ("long_share_pct", "x", "Enter a whole number. Must be between 1 and 100 %."),
        ("adaptive_window", "7", "Select a valid choice"),
    ],
)
def test_values_outside_their_range_are_refused_with_a_clear_message(admin_client, field, value, message):
    response = admin_client.post("/tuning/", form_values(**{"window_ms": 30, field: value}))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert SettingChange.objects.count() == 0 and get_settings_store().current().window_ms == 60


@pytest.mark.parametrize("field", ["default_deadline_ms", "long_deadline_ms"])
def test_a_default_deadline_longer_than_the_longest_is_refused(admin_client, field):
    values = form_values(default_deadline_ms=5000, long_deadline_ms=15000, max_deadline_ms=20000)
    values[field] = 25000
    response = admin_client.post("/tuning/", values)
    assert response.status_code == 400 and "cannot be longer than the longest" in response.content.decode()
    assert SettingChange.objects.count() == 0


def test_only_admins_may_tune(client, manager, outsider):
    for user in (manager, outsider):
        client.force_login(user)
        assert client.get("/tuning/").status_code == 403
        assert client.post("/tuning/", form_values(window_ms=1)).status_code == 403
    assert get_settings_store().current().window_ms == 60


def failing_audit_rows(execute, sql, params, many, context):
    """A database that fails when the audit row is written (Django's execute_wrapper hook)."""
    if sql.startswith('INSERT INTO "tuning_settingchange"'):
        raise OperationalError("database is locked")
    return execute(sql, params, many, context)


def test_a_database_error_during_a_save_leaves_the_workers_settings_alone(admin_client, admin_user):
    with connection.execute_wrapper(failing_audit_rows), pytest.raises(OperationalError):
        settings_save(user=admin_user, values={"window_ms": 10})
    assert get_settings_store().current_with_version() == (get_settings_store().defaults, 0)
    with connection.execute_wrapper(failing_audit_rows):
        response = admin_client.post("/tuning/", form_values(window_ms=10))
    assert response.status_code == 503 and "nothing was saved" in response.content.decode()
    assert get_settings_store().current_with_version() == (get_settings_store().defaults, 0)  # Redis untouched
    assert SettingChange.objects.count() == 0 and SchedulerOverride.objects.count() == 0


def test_a_save_while_redis_is_down_stands_and_reaches_the_workers_once_redis_is_back(
    admin_client, admin_user, settings
):
    settings_save(user=admin_user, values={"window_ms": 15})  # version 1 reaches Redis
    redis_url = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # Redis goes away
    response = admin_client.post("/tuning/", form_values(window_ms=20))
    page = response.content.decode()
    assert response.status_code == 200 and "Saved 1 change(s) as version 2" in page
    assert "Redis is not reachable: the workers" in page
    assert SchedulerOverride.objects.get(name="window_ms").value == 20
    assert admin_client.get("/tuning/").status_code == 200  # the page reads the database
    settings.REDIS_URL = redis_url  # back, still holding version 1
    store = get_settings_store()
    assert store.current_with_version() == (store.defaults.overridden({"window_ms": "15"}), 1)
    assert settings_republish() is True  # the beat task: Redis' version is older than the database's
    assert store.current_with_version() == (store.defaults.overridden({"window_ms": "20"}), 2)
    assert settings_republish() is False


def test_settings_lost_by_redis_are_put_back_from_the_database(admin_user, queue):
    settings_save(user=admin_user, values={"window_ms": 15})
    store = get_settings_store()
    queue.redis.delete(store.key)  # Redis restarted without persistence
    assert store.current().window_ms == 60
    assert settings_republish() is True
    assert store.current_with_version() == (store.defaults.overridden({"window_ms": "15"}), 1)
    assert settings_republish() is False  # already there


def test_the_worker_panel_shows_applied_versions_and_the_effective_window(admin_client, admin_user, queue):
    settings_save(user=admin_user, values={"window_ms": 15})
    queue.redis.zadd(queue.workers_key, {"<b>w1</b>": time.time(), "w2": time.time()})
    queue.redis.hset(
        queue.worker_key("<b>w1</b>"), mapping={"settings_version": 1, "window_ms": 15, "window_reason": "fixed"}
    )
    queue.redis.hset(queue.worker_key("w2"), mapping={"settings_version": 0, "window_ms": 60, "window_reason": "fixed"})
    page = admin_client.get("/tuning/workers/").content.decode()
    assert "&lt;b&gt;w1&lt;/b&gt;" in page and "<b>w1</b>" not in page
    assert "version 1 ✓" in page and "version 0, picking up 1" in page
    assert "15 ms" in page


def test_the_worker_panel_names_lanes_states_and_the_windows_reason_in_the_pages_language(admin_client, queue):
    why = ["adaptive: one arrival per %(gap)d ms fills a batch in %(fill)d ms", {"gap": 12, "fill": 84}]
    queue.redis.zadd(queue.workers_key, {"w1": time.time()})
    queue.redis.hset(queue.worker_key("w1"), mapping={
        "settings_version": 0, "window_ms": 84, "lanes": "short,long", "state": "idle",
        "window_reason": "adaptive: one arrival per 12 ms fills a batch in 84 ms", "window_why": json.dumps(why),
    })  # fmt: skip
    english = admin_client.get("/tuning/workers/").content.decode()
    assert "one arrival per 12 ms fills a batch in 84 ms" in english and "short, long" in english
    chinese = admin_client.get("/tuning/workers/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh").content.decode()
    assert "one arrival" not in chinese and "12" in chinese and "84" in chinese
    assert "short" not in chinese and "idle" not in chinese
