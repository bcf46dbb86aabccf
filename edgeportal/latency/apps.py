from django.apps import AppConfig


class LatencyConfig(AppConfig):
    name = "edgeportal.latency"
