"""Login throttling (django-axes): repeated wrong passwords lock one username from one address out."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client

PLANT_PC = "10.20.0.5"
LIMIT = 5  # the default of LOGIN_FAILURE_LIMIT
COOL_OFF = timedelta(minutes=15)  # the default of LOGIN_COOLOFF_MINUTES


def log_in(client: Client, username: str, password: str, address: str = PLANT_PC):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(response) -> bool:
    return response.status_code == 302 and response.url == "/jobs/"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME = LIMIT, COOL_OFF


@pytest.fixture
def locked_out(client, manager):
    """mia-manager, after as many wrong passwords from the plant PC as the limit allows."""
    return [log_in(client, "mia-manager", "wrong") for _ in range(LIMIT)]


def test_wrong_passwords_up_to_the_limit_end_in_a_lockout_page(locked_out):
    assert [r.status_code for r in locked_out] == [200] * (LIMIT - 1) + [429]
    page = locked_out[-1]
    assert "registration/locked_out.html" in [t.name for t in page.templates]
    assert b"Too many failed logins for <strong>mia-manager</strong>" in page.content
    assert page["Retry-After"] == str(15 * 60)


def test_the_right_password_is_refused_while_locked_out(locked_out, client):
    response = log_in(client, "mia-manager", "pw-manager")
    assert response.status_code == 429 and b"Login locked" in response.content
    assert "_auth_user_id" not in client.session


def test_another_user_from_the_same_address_is_not_locked_out(locked_out, client, admin_user):
    assert logged_in(log_in(client, "ada-admin", "pw-admin"))


def test_the_same_user_from_another_address_is_not_locked_out(locked_out, client):
    assert logged_in(log_in(client, "mia-manager", "pw-manager", address="10.20.0.6"))


def test_an_admin_unlocks_the_user_in_django_admin(locked_out, client, admin_user):
    from axes.models import AccessAttempt  # an app only once axes is installed

    admin = Client()
    admin.force_login(admin_user)
    listing = admin.get("/admin/axes/accessattempt/")
    assert b"mia-manager" in listing.content
    attempt = AccessAttempt.objects.get(username="mia-manager")
    admin.post(
        "/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"}
    )
    assert logged_in(log_in(client, "mia-manager", "pw-manager"))


def test_an_admin_unlocks_the_user_with_a_command(locked_out, client):
    call_command("axes_reset_username", "mia-manager")
    assert logged_in(log_in(client, "mia-manager", "pw-manager"))


def test_a_successful_login_clears_earlier_typos(client, manager):
    for _ in range(LIMIT - 1):
        log_in(client, "mia-manager", "typo")
    assert logged_in(log_in(client, "mia-manager", "pw-manager"))
    client.logout()
    assert log_in(client, "mia-manager", "typo").status_code == 200  # counting starts again
