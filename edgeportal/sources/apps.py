from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SourcesConfig(AppConfig):
    name = "edgeportal.sources"
    verbose_name = _("Sources")

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from edgeportal.core.lookups import lookups_changed
        from edgeportal.sources.models import Source

        # Web processes keep these rows between requests (core.lookups): any save or delete re-reads them all.
        post_save.connect(lookups_changed, sender=Source, dispatch_uid="sources-lookups-saved")
        post_delete.connect(lookups_changed, sender=Source, dispatch_uid="sources-lookups-deleted")
