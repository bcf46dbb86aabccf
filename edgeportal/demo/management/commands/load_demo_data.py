from django.core.management.base import BaseCommand

from edgeportal.demo.data import DEMO_LOGINS, DEMO_SOURCE, demo_data_load


class Command(BaseCommand):
    help = (
        "On a fresh database (no accounts yet): create the demo manager and admin, three prompt templates (one "
        "with outputs for a ticket, the MES and a screen), a screen board and one "
        "machine source, and print its token (alone on the last line). Otherwise change nothing."
    )

    def handle(self, *args, **options):
        demo = demo_data_load()
        if not demo.created:
            self.stdout.write("Demo data: this database has accounts already; nothing was loaded or changed.")
            self.stdout.write(
                f"The token of machine source {DEMO_SOURCE!r} is not shown again; to replace it: "
                f"python manage.py rotate_source_token {DEMO_SOURCE} (or Rotate in Django admin, Sources)."
            )
            return
        logins = " or ".join(f"{username} / {password}" for username, password in DEMO_LOGINS.items())
        self.stdout.write(f"Demo data created. Log in as {logins} (change these passwords in Django admin).")
        if demo.token:
            self.stdout.write(f"Machine source {DEMO_SOURCE!r}: its token is shown once, store it now:")
            self.stdout.write(demo.token)
