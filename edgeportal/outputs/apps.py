from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OutputsConfig(AppConfig):
    name = "edgeportal.outputs"
    verbose_name = _("Outputs")

    def ready(self):
        # Jobs sits below outputs (an output's runs are jobs) and reaches it through these hooks.
        from edgeportal.jobs import hooks
        from edgeportal.outputs.entry import outputs_accept
        from edgeportal.outputs.services import jobs_with_outputs_settle, outputs_advance

        hooks.connect("outputs_accept", outputs_accept)
        hooks.connect("runs_ended", outputs_advance)
        hooks.connect("outputs_settle", jobs_with_outputs_settle)
