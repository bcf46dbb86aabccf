from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TuningConfig(AppConfig):
    name = "edgeportal.tuning"
    verbose_name = _("Scheduler tuning")
