from django.core.management.base import BaseCommand

from edgeportal.prompts.cache import cache_clear


class Command(BaseCommand):
    help = "Delete every cached prompt result (jobs already answered keep their output)."

    def handle(self, *args, **options):
        self.stdout.write(f"deleted {cache_clear()} cached result(s)")
