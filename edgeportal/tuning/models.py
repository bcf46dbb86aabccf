"""Scheduler tuning: the admins' overrides of the environment defaults, and the audit list of every change."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class SchedulerOverride(models.Model):
    """The database copy of the live overrides in Redis, so they survive a Redis restart."""

    name = models.CharField(max_length=40, unique=True)
    value = models.BigIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"


class SettingChange(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    name = models.CharField(max_length=40)
    old_value = models.BigIntegerField()
    new_value = models.BigIntegerField()
    version = models.PositiveIntegerField(help_text=_("Settings version the save produced; workers report it."))

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name}: {self.old_value} -> {self.new_value}"
