from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DemoConfig(AppConfig):
    # The top of the layering: the demo data fills every app below it (accounts, prompts, boards, sources).
    name = "edgeportal.demo"
    verbose_name = _("Demo data")
