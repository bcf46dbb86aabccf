"""Where outputs go (destinations: webhooks that admins set in the admin) and each output's trip to each of
them (deliveries: attempts, the last error, a dead letter)."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from edgeportal.delivery.validators import validate_headers, validate_output_names, validate_webhook_url

MAX_TIMEOUT_S = 30


class Destination(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    url = models.CharField(
        _("URL"), max_length=500, validators=[validate_webhook_url],
        help_text=_("The webhook receiving a POST per output, e.g. https://mes-gateway.plant.local/hooks/edgeportal. "
                    "Its host must match EDGE_DELIVERY_ALLOWED_HOSTS; redirects are never followed.")
    )  # fmt: skip
    secret = models.CharField(
        _("secret"), max_length=200,
        help_text=_("Key of the X-EdgePortal-Signature header: sha256=<HMAC-SHA256 of the body>, hex.")
    )  # fmt: skip
    headers = models.JSONField(
        _("headers"), default=dict, blank=True, validators=[validate_headers],
        help_text=_('Sent with each request, e.g. {"Authorization": "Bearer ..."}.')
    )  # fmt: skip
    timeout_s = models.PositiveSmallIntegerField(
        _("timeout (s)"), default=5, validators=[MinValueValidator(1), MaxValueValidator(MAX_TIMEOUT_S)],
        help_text=_("Seconds to wait for the whole answer, 1 to 30; longer counts as a failed attempt.")
    )  # fmt: skip
    output_names = models.JSONField(
        _("outputs"), default=list, blank=True, validators=[validate_output_names],
        help_text=_('The outputs it receives, by name, e.g. ["ticket"]; empty: all.')
    )  # fmt: skip
    templates = models.ManyToManyField(
        "prompts.PromptTemplate", blank=True, related_name="destinations", verbose_name=_("templates"),
        help_text=_("Only outputs of jobs from these templates; none: all (free prompts included)."),
    )  # fmt: skip
    sources = models.ManyToManyField(
        "sources.Source", blank=True, related_name="destinations", verbose_name=_("sources"),
        help_text=_("Only outputs of jobs from these machine sources; none: all (people's jobs included)."),
    )  # fmt: skip
    is_active = models.BooleanField(
        _("active"), default=True, help_text=_("Untick to stop sending; deliveries still waiting become dead letters.")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        ordering = ["name"]
        verbose_name = _("destination")
        verbose_name_plural = _("destinations")

    def __str__(self) -> str:
        return self.name


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("pending")  # made (or re-sent), not tried yet
        SENDING = "sending", _("sending")  # a worker holds it (lease_until) and its request is under way
        RETRYING = "retrying", _("retrying")  # failed, tried again at next_attempt_at
        DELIVERED = "delivered", _("delivered")
        DEAD = "dead", _("dead letter")  # given up: out of attempts, or its URL is no longer allowed

    WAITING = (Status.PENDING, Status.RETRYING)

    output = models.ForeignKey(
        "outputs.JobOutput", on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("output")
    )
    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("destination")
    )
    idempotency_key = models.CharField(
        max_length=200,
        unique=True,
        help_text=_("Sent as Idempotency-Key with every attempt, re-sends included."),
        verbose_name=_("idempotency key"),
    )
    body = models.TextField(
        help_text=_("The JSON sent, fixed when the delivery was made: each attempt sends it."), verbose_name=_("body")
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, verbose_name=_("status"))
    attempts = models.PositiveSmallIntegerField(default=0, verbose_name=_("attempts"))
    next_attempt_at = models.DateTimeField(
        help_text=_("Not tried again before this."), verbose_name=_("next attempt at")
    )
    queued_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("When the task last queued for it was due to run (the sweep's clue)."),
        verbose_name=_("queued at"),
    )
    lease_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("While sending: sent again after this, its worker presumed dead."),
        verbose_name=_("lease until"),
    )
    last_error = models.TextField(blank=True, verbose_name=_("last error"))
    response_code = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text=_("Of the last answer."), verbose_name=_("response code")
    )
    delivered_at = models.DateTimeField(null=True, blank=True, verbose_name=_("delivered at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        constraints = [
            models.UniqueConstraint(fields=["output", "destination"], name="one_delivery_per_output_and_destination")
        ]
        indexes = [
            # The sweep: deliveries waiting whose time came (and whose task may be lost) ...
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            # ... and those being sent whose lease ran out.
            models.Index(fields=["status", "lease_until"], name="delivery_lease"),
        ]

    def __str__(self) -> str:
        return f"{self.idempotency_key} ({self.status})"
