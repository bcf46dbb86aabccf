from django.contrib import admin

from edgeportal.core.admin import ReadOnlyAdmin
from edgeportal.tuning.models import SettingChange


@admin.register(SettingChange)
class SettingChangeAdmin(ReadOnlyAdmin):
    """Changes are made on the tuning page, which checks ranges and tells the workers; here they are only read."""

    list_display = ["changed_at", "user", "name", "old_value", "new_value", "version"]
    list_filter = ["name"]
