"""The gauge an alert reads when no exits worker sends: deliveries due for a minute that nobody attempts."""

from datetime import timedelta

import pytest
from django.utils import timezone

from edgeportal.delivery.models import Delivery
from edgeportal.monitoring.metrics import exposition
from tests.delivery.conftest import make_destination, make_output


def overdue() -> float:
    for line in exposition().decode().splitlines():
        if line.startswith("edgeportal_deliveries_overdue "):
            return float(line.split()[1])
    raise AssertionError("edgeportal_deliveries_overdue is not exposed")


@pytest.mark.django_db
def test_deliveries_due_for_a_minute_and_not_under_way_are_counted_as_overdue():
    destination, now = make_destination(), timezone.now()
    assert overdue() == 0

    def delivery(status, **fields):
        output = make_output(name=f"o{Delivery.objects.count()}")
        return Delivery.objects.create(output=output, destination=destination, status=status, body="{}",
                                       idempotency_key=f"k{output.pk}", **fields)  # fmt: skip

    delivery("pending", next_attempt_at=now - timedelta(minutes=5))  # nobody took it
    delivery("retrying", next_attempt_at=now - timedelta(minutes=2))
    delivery("sending", next_attempt_at=now - timedelta(minutes=5), lease_until=now - timedelta(minutes=3))
    delivery("pending", next_attempt_at=now)  # due just now: not late yet
    delivery("sending", next_attempt_at=now - timedelta(minutes=5), lease_until=now + timedelta(seconds=5))
    delivery("delivered", next_attempt_at=now - timedelta(hours=1))
    delivery("dead", next_attempt_at=now - timedelta(hours=1))
    assert overdue() == 3
