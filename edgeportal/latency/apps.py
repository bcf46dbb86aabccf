from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LatencyConfig(AppConfig):
    name = "edgeportal.latency"
    verbose_name = _("Latency")
