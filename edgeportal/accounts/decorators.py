"""View decorators for the two roles: anonymous users go to the login page, others without the role get 403."""

from django.contrib.auth.decorators import user_passes_test
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _

from edgeportal.accounts.roles import is_admin, is_manager


def role_required(has_role, message: str):
    def decorator(view):
        def check(user):
            if not has_role(user):
                raise PermissionDenied(message)
            return True

        return user_passes_test(check)(view)

    return decorator


manager_required = role_required(is_manager, _("Only managers and admins can use the job pages."))
admin_required = role_required(is_admin, _("Only admins can use this page."))
