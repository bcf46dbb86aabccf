"""Reads of the delivery app: which destinations an output goes to, which deliveries the sweep resumes."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q

from edgeportal.delivery.models import Delivery, Destination

SWEEP_BATCH = 500  # deliveries one sweep resumes at most; the next sweep takes the rest


def destinations_for(*, output_name: str, template_id: int | None, source_id: int | None) -> list[Destination]:
    """The active destinations that take this output: by its name (none listed: all), its job's template and
    its job's source (none chosen: all; a destination limited to some templates never gets free prompts)."""
    destinations = (
        Destination.objects.filter(is_active=True)
        .filter(Q(templates=None) | Q(templates=template_id) if template_id else Q(templates=None))
        .filter(Q(sources=None) | Q(sources=source_id) if source_id else Q(sources=None))
        .distinct()
        .order_by("pk")
    )
    return [each for each in destinations if not each.output_names or output_name in each.output_names]


def deliveries_lease_ran_out(*, now: datetime) -> list[tuple[int, int]]:
    """(id, attempts) of the deliveries being sent whose lease ran out: their worker died mid-request."""
    rows = Delivery.objects.filter(status=Delivery.Status.SENDING, lease_until__lt=now).order_by("lease_until")
    return list(rows.values_list("pk", "attempts")[:SWEEP_BATCH])


def deliveries_task_lost(*, cutoff: datetime) -> list[int]:
    """Ids of the deliveries waiting whose time came before cutoff and whose task, due before cutoff too, never
    ran: lost with a Redis restart, held by a worker killed before it began, or never queued."""
    rows = Delivery.objects.filter(status__in=Delivery.WAITING, next_attempt_at__lte=cutoff).filter(
        Q(queued_at=None) | Q(queued_at__lte=cutoff)
    )
    return list(rows.order_by("next_attempt_at").values_list("pk", flat=True)[:SWEEP_BATCH])
