from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from edgeportal.sources.models import Source
from edgeportal.sources.services import source_create


class Command(BaseCommand):
    help = "Create a machine source and print its API token once (the last line of the output)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--kind", default=Source.Kind.MES, choices=Source.Kind.values)

    def handle(self, *args, name, kind, **options):
        try:
            source, token = source_create(name=name, kind=kind)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(f"Created source {source.name!r} ({source.kind}). Its token is shown once; store it now:")
        self.stdout.write(token)
