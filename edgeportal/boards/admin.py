from django.contrib import admin, messages
from django.db import models
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from edgeportal.boards.models import MAX_SHOWN, Board
from edgeportal.boards.services import board_token_renew
from edgeportal.formfields import StrictIntegerField


@admin.register(Board)
class BoardAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "output_names", "is_public", "how_many", "screen_link", "created_at"]
    list_filter = ["is_public"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["templates", "sources"]
    readonly_fields = ["screen_link", "created_at"]
    actions = ["new_token"]
    formfield_overrides = {
        models.PositiveSmallIntegerField: {"form_class": StrictIntegerField, "min_value": 1, "max_value": MAX_SHOWN}
    }

    @admin.display(description=gettext_lazy("Screen URL"))
    def screen_link(self, board: Board) -> str:
        """The URL to open on the screen, its token included unless the board is public."""
        if not board.pk:
            return _("Shown once the board is saved.")
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', board.screen_url(), board.screen_url())

    @admin.action(
        description=gettext_lazy("New token for the selected boards (screens with the old URL stop updating)"),
        permissions=["change"],
    )
    def new_token(self, request, queryset):
        for board in queryset:
            board_token_renew(board=board)
            messages.warning(
                request,
                _("New URL for %(board)s: %(url)s") % {"board": board.name, "url": board.screen_url()},
            )
