from django.contrib import admin, messages
from django.utils.text import Truncator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from edgeportal.core.admin import ReadOnlyAdmin
from edgeportal.delivery.forms import DestinationForm
from edgeportal.delivery.models import Delivery, Destination

SECRET_MASK = "••••••••"


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    """Webhooks are set here and nowhere else (no API): an admin's URL, checked against the node's allowlist."""

    form = DestinationForm
    list_display = ["name", "url", "is_active", "masked_secret", "outputs", "timeout_s", "updated_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "url"]
    filter_horizontal = ["templates", "sources"]

    @admin.display(description=gettext_lazy("secret"))
    def masked_secret(self, destination: Destination) -> str:
        return SECRET_MASK

    @admin.display(description=gettext_lazy("outputs"))
    def outputs(self, destination: Destination) -> str:
        return ", ".join(destination.output_names) or _("all")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if form.generated_secret:
            messages.warning(
                request,
                _("Secret of %(destination)s (shown once, give it to the receiver now): %(secret)s")
                % {"destination": obj.name, "secret": form.generated_secret},
            )


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    """Each output's trip to each destination, written by the exits worker: read, re-send, delete."""

    list_display = [
        "id", "status", "destination", "job", "output_name", "attempts", "response_code", "short_error",
        "next_attempt_at", "delivered_at", "updated_at",
    ]  # fmt: skip
    list_filter = ["status", "destination"]
    list_select_related = ["destination", "output"]
    search_fields = ["idempotency_key"]
    actions = ["resend"]
    fields = [
        "status", "destination", "output", "idempotency_key", "attempts", "response_code", "last_error",
        "next_attempt_at", "lease_until", "delivered_at", "created_at", "updated_at", "body",
    ]  # fmt: skip

    @admin.display(description=gettext_lazy("job"), ordering="output__job")
    def job(self, delivery: Delivery) -> int:
        return delivery.output.job_id

    @admin.display(description=gettext_lazy("output"), ordering="output__name")
    def output_name(self, delivery: Delivery) -> str:
        return delivery.output.name

    @admin.display(description=gettext_lazy("last error"))
    def short_error(self, delivery: Delivery) -> str:
        return Truncator(delivery.last_error).chars(80)

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("delivery.change_delivery")

    @admin.action(
        description=gettext_lazy("Re-send the selected deliveries (fresh attempts, the same Idempotency-Key)"),
        permissions=["resend"],
    )
    def resend(self, request, queryset):
        selected = list(queryset.values_list("pk", flat=True))
        # Here, not at the top: the admin loads as Django starts, before the metrics folder is chosen.
        from edgeportal.delivery.services import deliveries_resend

        count = deliveries_resend(delivery_ids=selected)
        messages.success(request, _("%(count)d delivery(ies) will be sent again.") % {"count": count})
        if count < len(selected):
            messages.warning(
                request,
                _("%(count)d being sent right now were left alone.") % {"count": len(selected) - count},
            )
