from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "edgeportal.accounts"
