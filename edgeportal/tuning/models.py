"""Scheduler tuning: the admins' overrides of the environment defaults, and the audit list of every change."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class SchedulerOverride(models.Model):
    """The database copy of the live overrides in Redis, so they survive a Redis restart."""

    name = models.CharField(max_length=40, unique=True, verbose_name=_("name"))
    value = models.BigIntegerField(verbose_name=_("value"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("scheduler setting")
        verbose_name_plural = _("scheduler settings")

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"


class SettingChange(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, verbose_name=_("user"))
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("changed at"))
    name = models.CharField(max_length=40, verbose_name=_("name"))
    old_value = models.BigIntegerField(verbose_name=_("old value"))
    new_value = models.BigIntegerField(verbose_name=_("new value"))
    version = models.PositiveIntegerField(
        help_text=_("Settings version the save produced; workers report it."), verbose_name=_("version")
    )

    class Meta:
        verbose_name = _("setting change")
        verbose_name_plural = _("setting changes")
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name}: {self.old_value} -> {self.new_value}"
