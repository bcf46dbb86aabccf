from django.apps import AppConfig


class PromptsConfig(AppConfig):
    name = "edgeportal.prompts"
