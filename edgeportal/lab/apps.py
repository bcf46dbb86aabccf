from django.apps import AppConfig


class LabConfig(AppConfig):
    name = "edgeportal.lab"
    verbose_name = "Latency lab"
