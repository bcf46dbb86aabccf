"""Destinations are set by admins in the admin only; deliveries are listed there and can be re-sent."""

import pytest
from django.contrib.auth.models import User

from edgeportal.delivery.models import Delivery, Destination
from edgeportal.delivery.services import deliveries_create
from tests.delivery.conftest import SECRET, make_destination, make_output

pytestmark = pytest.mark.django_db

ADD = "/admin/delivery/destination/add/"


@pytest.fixture
def admin_client(client):
    # No password (nothing to hash, which takes seconds): logged in directly.
    client.force_login(User.objects.create_user("ada-admin", is_staff=True, is_superuser=True))
    return client


def form(**fields):
    return {"name": "MES gateway", "url": "https://mes.plant.local/hooks", "secret": "", "headers": "{}",
            "timeout_s": "5", "output_names": "", "is_active": "on", **fields}  # fmt: skip


def test_an_admin_adds_a_destination_and_sees_its_generated_secret_once(admin_client):
    response = admin_client.post(ADD, form(output_names="ticket, mes", headers='{"Authorization": "Bearer t"}'),
                                 follow=True)  # fmt: skip
    destination = Destination.objects.get()
    assert destination.output_names == ["ticket", "mes"] and destination.headers == {"Authorization": "Bearer t"}
    assert len(destination.secret) >= 40
    assert destination.secret in response.content.decode()  # the message, this once
    listing = admin_client.get("/admin/delivery/destination/").content.decode()
    assert destination.secret not in listing and "••••" in listing
    change = admin_client.get(f"/admin/delivery/destination/{destination.pk}/change/").content.decode()
    assert destination.secret not in change


def test_a_secret_left_empty_on_change_is_kept_and_a_new_one_replaces_it(admin_client):
    destination = make_destination(url="https://mes.plant.local/hooks")
    url = f"/admin/delivery/destination/{destination.pk}/change/"
    assert admin_client.post(url, form(name=destination.name)).status_code == 302
    assert Destination.objects.get().secret == SECRET
    assert admin_client.post(url, form(name=destination.name, secret="new-secret")).status_code == 302
    assert Destination.objects.get().secret == "new-secret"


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"url": "https://evil.example/x"}, "This host is not allowed"),
        ({"url": "http://127.0.0.1:6379/"}, None),  # allowed by the test settings: no error
        ({"url": "gopher://mes.plant.local/"}, "This scheme is not allowed"),
        ({"url": "https://admin:pw@mes.plant.local/"}, "Remove the user name and password"),
        ({"url": "not a url"}, "Enter a valid URL"),
        ({"headers": "{not json"}, "Enter a valid JSON"),
        ({"headers": '["a"]'}, "Headers must be a JSON object"),
        ({"headers": '{"Host": "other"}'}, "Host is set by EdgePortal itself"),
        ({"headers": '{"X-EdgePortal-Signature": "sha256=0"}'}, "is set by EdgePortal itself"),
        ({"headers": '{"Idempotency-Key": "mine"}'}, "is set by EdgePortal itself"),
        ({"headers": '{"X-Line": "a\\r\\nEvil: 1"}'}, "printable ASCII"),
        ({"headers": '{"X-Line": 3}'}, "printable ASCII"),
        ({"headers": '{"Bad Name": "x"}'}, "is not a header name"),
        ({"timeout_s": "0"}, "greater than or equal to 1"),
        ({"timeout_s": "31"}, "less than or equal to 30"),
        ({"output_names": "Ticket"}, "Output names must be a list"),
    ],
)
def test_a_bad_field_is_a_form_error_never_a_500(admin_client, fields, message):
    response = admin_client.post(ADD, form(**fields))
    if message is None:
        assert response.status_code == 302
        return
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Destination.objects.exists()


def test_with_no_host_allowed_the_form_says_which_setting_to_ask_for(admin_client, settings):
    settings.EDGE_DELIVERY_ALLOWED_HOSTS = []
    response = admin_client.post(ADD, form())
    assert "EDGE_DELIVERY_ALLOWED_HOSTS: none set" in response.content.decode()


def test_the_delivery_list_shows_status_attempts_last_error_and_code_and_resends(admin_client,
                                                                                 django_capture_on_commit_callbacks,
                                                                                 monkeypatch):  # fmt: skip
    from edgeportal.delivery import services

    queued = []
    monkeypatch.setattr(services, "queue_deliveries", lambda ids, countdown_s=0.0: queued.extend(ids))
    make_destination(name="mes-gateway")
    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = deliveries_create(output=make_output())
    Delivery.objects.filter(pk=delivery.pk).update(status="dead", attempts=3, response_code=503,
                                                   last_error="HTTP 503: busy, try again")  # fmt: skip
    page = admin_client.get("/admin/delivery/delivery/?status__exact=dead").content.decode()
    for shown in ("dead letter", "mes-gateway", "HTTP 503: busy, try again", "503", "ticket", "Re-send"):
        assert shown in page, shown
    detail = admin_client.get(f"/admin/delivery/delivery/{delivery.pk}/change/")
    assert detail.status_code == 200 and delivery.idempotency_key in detail.content.decode()
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/delivery/delivery/", {"action": "resend", "_selected_action": [delivery.pk]}, follow=True
        )
    assert "1 delivery(ies) will be sent again." in response.content.decode()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0) and queued == [delivery.pk]


def test_a_manager_cannot_reach_destinations(client):
    client.force_login(User.objects.create_user("mia-manager"))
    assert client.get("/admin/delivery/destination/").status_code == 302  # to the admin's login
