from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from edgeportal.latency.models import BatchRecord, JobLatency


def test_the_synthetic_command_adds_finished_jobs_spread_over_the_past_days(db):
    call_command("latency_synthetic", records=30, days=2, stdout=None)
    assert JobLatency.objects.count() == 30 and BatchRecord.objects.count() == 6
    oldest = JobLatency.objects.order_by("created_at").first().created_at
    assert timezone.now() - timedelta(days=2) <= oldest < timezone.now() - timedelta(minutes=1)
    assert not JobLatency.objects.filter(total_ms__lte=0).exists()
