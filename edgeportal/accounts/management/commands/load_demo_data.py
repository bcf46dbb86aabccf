from django.core.management.base import BaseCommand

from edgeportal.accounts.services import DEMO_LOGINS, DEMO_SOURCE, demo_data_load


class Command(BaseCommand):
    help = "Create the demo manager and admin, two prompt templates and one machine source (token printed)."

    def handle(self, *args, **options):
        token = demo_data_load()
        for username, password in DEMO_LOGINS.items():
            self.stdout.write(f"login: {username} / {password}")
        self.stdout.write(f"machine source {DEMO_SOURCE!r} token (new on every run):")
        self.stdout.write(token)
