from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PromptsConfig(AppConfig):
    name = "edgeportal.prompts"
    verbose_name = _("Prompts")
