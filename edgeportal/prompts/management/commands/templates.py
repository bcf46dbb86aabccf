import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from edgeportal.prompts.yaml_io import ImportProblem, templates_export, templates_import


class Command(BaseCommand):
    help = "Export prompt templates to YAML, or import them (all-or-nothing; a changed body makes a new version)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["export", "import"])
        parser.add_argument("file", help="YAML file to write (export) or read (import); - for stdout/stdin")

    def handle(self, *args, action, file, **options):
        if action == "export":
            text = templates_export()
            if file == "-":
                self.stdout.write(text)
            else:
                Path(file).write_text(text)
                self.stdout.write(f"exported to {file}")
            return
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text()
        except OSError as error:
            raise CommandError(f"cannot read {file}: {error.strerror}") from None
        except UnicodeDecodeError as error:
            raise CommandError(f"cannot read {file}: not UTF-8 text ({error.reason} at byte {error.start})") from None
        try:
            changes = templates_import(text)
        except ImportProblem as problem:
            raise CommandError(f"nothing imported: {problem}") from None
        for line in changes:
            self.stdout.write(line)
