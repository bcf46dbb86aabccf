from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PromptsConfig(AppConfig):
    name = "edgeportal.prompts"
    verbose_name = _("Prompts")

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from edgeportal.core.lookups import lookups_changed
        from edgeportal.prompts.models import BlockedPattern

        # Web processes keep these rows between requests (core.lookups): any save or delete re-reads them all.
        post_save.connect(lookups_changed, sender=BlockedPattern, dispatch_uid="prompts-lookups-saved")
        post_delete.connect(lookups_changed, sender=BlockedPattern, dispatch_uid="prompts-lookups-deleted")
