from django.core.management.base import BaseCommand, CommandError

from inference.model_files import ModelConfigError
from inference.runtime import load_engine_from_env


class Command(BaseCommand):
    help = "Load EDGE_MODEL once (converting a GGUF file to the safetensors cache) so workers start in seconds."

    def handle(self, *args, **options):
        try:
            model = load_engine_from_env()
        except ModelConfigError as error:
            raise CommandError(str(error)) from None
        identity = model.identity
        self.stdout.write(f"model ready: {identity.model} ({identity.dtype} on {identity.device})")
