"""The two roles and their permissions (the demo data, edgeportal.demo, builds on them)."""

from django.contrib.auth.models import Group, Permission

from edgeportal.accounts.roles import ADMINS, MANAGERS


def roles_ensure() -> tuple[Group, Group]:
    """Managers may submit free prompts; admins hold every permission (Django admin also needs is_staff)."""
    managers, _ = Group.objects.get_or_create(name=MANAGERS)
    admins, _ = Group.objects.get_or_create(name=ADMINS)
    managers.permissions.add(Permission.objects.get(codename="submit_free_prompt", content_type__app_label="jobs"))
    admins.permissions.set(Permission.objects.all())
    return managers, admins
