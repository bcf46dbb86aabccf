from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BoardsConfig(AppConfig):
    name = "edgeportal.boards"
    verbose_name = _("Screen boards")
