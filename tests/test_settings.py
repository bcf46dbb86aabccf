"""Settings a node runs with: DEBUG off unless asked for, its own kept SECRET_KEY, TLS settings from the
environment, and the site's own error pages."""

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.test import RequestFactory
from django.views.defaults import server_error

ROOT = Path(__file__).resolve().parent.parent
# Settings the environment of a test run may carry, which these tests set themselves.
OURS = (
    "DEBUG", "SECRET_KEY", "SECRET_KEY_FILE", "SECURE_PROXY_SSL_HEADER", "SECURE_SSL_REDIRECT", "SECURE_COOKIES",
    "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "CSRF_TRUSTED_ORIGINS",
    "LOGIN_FAILURE_LIMIT", "LOGIN_COOLOFF_MINUTES", "EDGE_DTYPE", "EDGE_MODELS",
)  # fmt: skip
TLS = {
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_COOKIES": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "CSRF_TRUSTED_ORIGINS": "https://edge-node-3.plant.lan",
    "ALLOWED_HOSTS": "edge-node-3.plant.lan",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """manage.py in a fresh process, with the environment of a plain start plus `env`."""
    clean = {name: value for name, value in os.environ.items() if name not in OURS}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True
    )


def setting(name: str, **env: str) -> str:
    result = manage("shell", "-c", f"from django.conf import settings; print(settings.{name})", **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_debug_is_off_unless_asked_for():
    assert setting("DEBUG") == "False"
    assert setting("DEBUG", DEBUG="true") == "True"


def test_without_a_configured_key_the_node_generates_one_and_keeps_it():
    first = setting("SECRET_KEY")
    assert first == setting("SECRET_KEY")  # a later start reads the same key
    assert first == (ROOT / "var" / "secret_key").read_text().strip()
    assert len(first) >= 50 and not first.startswith("dev-only")


def test_a_configured_key_or_key_file_wins(tmp_path):
    key_file = tmp_path / "secret"
    key_file.write_text("from-a-file-" + "x" * 50 + "\n")
    assert setting("SECRET_KEY", SECRET_KEY="from-the-environment-" + "y" * 50) == "from-the-environment-" + "y" * 50
    assert setting("SECRET_KEY", SECRET_KEY_FILE=str(key_file)) == "from-a-file-" + "x" * 50


def test_a_missing_key_file_is_a_clear_error(tmp_path):
    result = manage("check", SECRET_KEY_FILE=str(tmp_path / "nowhere"))
    assert result.returncode != 0
    assert f"SECRET_KEY_FILE={tmp_path / 'nowhere'} cannot be read: No such file or directory" in result.stderr


def test_the_dtype_of_the_cache_key_defaults_to_float32_and_a_bad_one_is_a_clear_error():
    assert setting("EDGE_DTYPE", EDGE_DTYPE="") == "float32"
    assert setting("EDGE_DTYPE", EDGE_DTYPE=" BFloat16 ") == "bfloat16"
    result = manage("check", EDGE_DTYPE="int3")
    assert result.returncode != 0
    assert "EDGE_DTYPE must be one of float32, bfloat16, float16 (or empty), got 'int3'" in result.stderr


def test_a_bad_list_of_models_stops_the_node_at_start_with_a_clear_message():
    result = manage("check", EDGE_MODELS="qwen")
    assert result.returncode != 0 and "EDGE_MODELS: 'qwen' is not name=path" in result.stderr


def test_the_generated_key_file_is_private_and_made_once(tmp_path):
    from edgeportal.secret_key import secret_key_load_or_create

    path = tmp_path / "var" / "secret_key"
    with ThreadPoolExecutor(8) as pool:  # processes starting at once all end up with the same key
        keys = set(pool.map(lambda _: secret_key_load_or_create(path), range(16)))
    assert len(keys) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_key_load_or_create(path) == keys.pop() == path.read_text().strip()
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no candidate files left behind


def test_tls_settings_come_from_the_environment():
    env = {**TLS, "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true"}
    assert setting("SECURE_PROXY_SSL_HEADER", **env) == "('HTTP_X_FORWARDED_PROTO', 'https')"
    assert setting("SESSION_COOKIE_SECURE", **env) == setting("CSRF_COOKIE_SECURE", **env) == "True"
    assert setting("SECURE_HSTS_SECONDS", **env) == "31536000"
    assert setting("SECURE_HSTS_INCLUDE_SUBDOMAINS", **env) == "True"
    assert setting("SECURE_SSL_REDIRECT", **env) == "True"
    assert setting("CSRF_TRUSTED_ORIGINS", **env) == "['https://edge-node-3.plant.lan']"
    assert setting("SESSION_COOKIE_SECURE") == "False"  # plain HTTP on the plant LAN by default


def test_login_throttling_limits_come_from_the_environment():
    assert (setting("AXES_FAILURE_LIMIT"), setting("AXES_COOLOFF_TIME")) == ("5", "0:15:00")
    assert setting("AXES_FAILURE_LIMIT", LOGIN_FAILURE_LIMIT="3") == "3"
    assert setting("AXES_COOLOFF_TIME", LOGIN_COOLOFF_MINUTES="0") == "None"  # locked until an admin unlocks


def test_a_trusted_origin_without_a_scheme_is_refused():
    result = manage("check", CSRF_TRUSTED_ORIGINS="edge-node-3.plant.lan")
    assert result.returncode != 0 and "need a scheme" in result.stderr


def deploy_warnings(**env: str) -> list[str]:
    result = manage("check", "--deploy", **env)
    assert result.returncode == 0, result.stderr
    return sorted(line.split(")")[0].split("(")[-1] for line in result.stderr.splitlines() if "(security." in line)


def test_check_deploy_warns_only_about_the_tls_settings_we_leave_to_the_plant():
    # Plain HTTP on the plant LAN: no HSTS, no redirect, no secure-only cookies.
    assert deploy_warnings() == ["security.W004", "security.W008", "security.W012", "security.W016"]
    # Behind TLS: HSTS for subdomains and preloading stay the domain owner's choice.
    assert deploy_warnings(**TLS) == ["security.W005", "security.W021"]
    assert deploy_warnings(**TLS, SECURE_HSTS_INCLUDE_SUBDOMAINS="true", SECURE_HSTS_PRELOAD="true") == []


def test_an_unknown_url_gets_the_sites_404_page(client, db):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "404.html" in [t.name for t in response.templates]
    assert b"There is no page at <code>/no-such-page/</code>" in response.content
    assert b"URLconf" not in response.content


def test_a_server_error_gets_the_sites_500_page_without_a_request_context():
    response = server_error(RequestFactory().get("/jobs/"))
    assert response.status_code == 500
    assert b"Something went wrong" in response.content and b"EdgePortal" in response.content


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_with_ssl_redirect_probes_and_the_local_scrape_stay_on_plain_http(client, settings, path):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/login/").status_code == 301
    assert client.get(path).status_code == 200


def test_sqlite_runs_in_wal_mode_so_a_commit_is_one_append(db):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
