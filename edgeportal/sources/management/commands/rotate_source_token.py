from django.core.management.base import BaseCommand, CommandError

from edgeportal.sources.models import Source
from edgeportal.sources.services import source_rotate_token


class Command(BaseCommand):
    help = "Give a machine source a new API token and print it once (the last line); the old one stops working."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        source = Source.objects.filter(name=name).first()
        if source is None:
            known = ", ".join(Source.objects.order_by("name").values_list("name", flat=True)) or "none yet"
            raise CommandError(f"No source named {name!r} (sources: {known}).")
        token = source_rotate_token(source=source)
        self.stdout.write(f"New token for source {source.name!r}; the old one is refused from now on. Store it now:")
        self.stdout.write(token)
