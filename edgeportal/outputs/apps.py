from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OutputsConfig(AppConfig):
    name = "edgeportal.outputs"
    verbose_name = _("Outputs")

    def ready(self):
        # Jobs sits below outputs (an output's runs are jobs) and reaches it through these hooks.
        from edgeportal.jobs import hooks

        hooks.connect("outputs_accept", "edgeportal.outputs.entry.outputs_accept")
        hooks.connect("runs_ended", "edgeportal.outputs.services.outputs_advance")
        hooks.connect("outputs_settle", "edgeportal.outputs.services.jobs_with_outputs_settle")
