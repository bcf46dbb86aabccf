import subprocess
import sys


def test_the_web_side_never_imports_torch():
    # Web processes stay small and start fast: torch and transformers load only in workers.
    code = (
        "import django, sys; django.setup();"
        "import edgeportal.urls, edgeportal.jobs.services, edgeportal.jobs.sink, edgeportal.celery;"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"DJANGO_SETTINGS_MODULE": "edgeportal.settings", "PATH": ""},
        check=True,
    )
    assert result.stdout.strip() == "[]"
