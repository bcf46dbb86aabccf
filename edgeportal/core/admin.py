from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the pipeline: admins may read and delete them, never invent or edit them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
