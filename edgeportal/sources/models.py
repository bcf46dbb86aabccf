"""Machine sources (cameras, PLCs, AGVs, MES) and their API tokens, stored hashed."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Source(models.Model):
    class Kind(models.TextChoices):
        CAMERA = "camera"
        PLC = "plc"
        AGV = "agv"
        MES = "mes"
        MANAGER = "manager"

    name = models.CharField(max_length=100, unique=True, verbose_name=_("name"))
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.MES, verbose_name=_("kind"))
    token_hash = models.CharField(max_length=64, unique=True, verbose_name=_("token hash"))
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))
    allow_free_prompts = models.BooleanField(
        default=True,
        help_text=_("Untick to restrict this source to prompt templates."),
        verbose_name=_("allow free prompts"),
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Requests per minute; empty uses EDGE_RATE_LIMIT_PER_MINUTE, 0 means no limit."),
        verbose_name=_("rate limit per minute"),
    )
    deadline_ms = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Default deadline of its jobs in ms (wins over the template's); empty: none."),
        verbose_name=_("deadline (ms)"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("source")
        verbose_name_plural = _("sources")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
