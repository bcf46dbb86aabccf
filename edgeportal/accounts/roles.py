"""The two roles people have: managers submit and watch jobs, admins do everything."""

from django.contrib.auth.models import AbstractBaseUser

MANAGERS = "managers"
ADMINS = "admins"


def is_admin(user: AbstractBaseUser) -> bool:
    return user.is_authenticated and (user.is_superuser or user.groups.filter(name=ADMINS).exists())


def is_manager(user: AbstractBaseUser) -> bool:
    return user.is_authenticated and (is_admin(user) or user.groups.filter(name=MANAGERS).exists())
