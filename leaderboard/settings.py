"""Settings of the leaderboard platform, read from the environment (django-environ).

Two ways to run:

- the **embedded default** (``DJANGO_ENV`` unset or ``development``): SQLite, files on local
  disk and a Celery worker using kombu's filesystem transport, all under ``VAR_DIR``
  (default ``var/``); no server is needed;
- **production** (``DJANGO_ENV=production``): PostgreSQL (``DATABASE_URL``), Redis or
  RabbitMQ (``CELERY_BROKER_URL``) and S3 (``AWS_STORAGE_BUCKET_NAME``). The process refuses to
  start without ``SECRET_KEY`` and ``DATABASE_URL`` whenever ``DEBUG`` is off.

Every variable is listed in docs/platform.md.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue
from whitenoise.compress import Compressor

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in ("development", "production", "test"):
    raise ImproperlyConfigured(
        f"DJANGO_ENV is {DJANGO_ENV!r}; it must be development, production or test"
    )
IS_PRODUCTION = DJANGO_ENV == "production"
DEBUG = env.bool("DEBUG", default=DJANGO_ENV == "development")

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

_missing = [name for name in ("SECRET_KEY", "DATABASE_URL") if not env.str(name, default="")]
if (IS_PRODUCTION or not DEBUG) and _missing:
    raise ImproperlyConfigured(
        f"{' and '.join(_missing)} must be set in the environment when DEBUG is off "
        f"(DJANGO_ENV={DJANGO_ENV}); the embedded default (DJANGO_ENV=development) needs neither"
    )
SECRET_KEY = env.str("SECRET_KEY", default="development-only-key-never-used-in-production")

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"] if not IS_PRODUCTION else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "storages",
    "leaderboard.board",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "leaderboard.board.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before anything reads the body; after the user is known, for the page it answers with.
    "leaderboard.board.uploads.RequestSizeLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Content-Security-Policy on every response (leaderboard.board.csp); CSP_REPORT_ONLY sends it
# as Content-Security-Policy-Report-Only, which reports violations without blocking them.
CSP_REPORT_ONLY = env.bool("CSP_REPORT_ONLY", default=False)

ROOT_URLCONF = "leaderboard.urls"
WSGI_APPLICATION = "leaderboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "leaderboard.board.context.navigation",
                "leaderboard.board.csp.nonce",
            ],
        },
    },
]

# Database ----------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'leaderboard.sqlite3'}")
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker write to the same file: WAL lets readers go on while a
    # write is under way, and IMMEDIATE transactions take the write lock up front, so the
    # per-user quota check cannot interleave with another submission.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Auth --------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "my-submissions"
LOGOUT_REDIRECT_URL = "home"

# Sign-up confirms an e-mail address through a signed link valid this many days.
EMAIL_CONFIRM_DAYS = env.int("EMAIL_CONFIRM_DAYS", default=3)
# Failed logins (web form and API token endpoint alike): after LOGIN_MAX_FAILURES wrong
# passwords for one user name, or LOGIN_MAX_FAILURES_PER_CLIENT from one client address,
# within LOGIN_FAILURE_WINDOW seconds, logins are refused for LOGIN_LOCKOUT_SECONDS, even
# with the right password. Counted in the shared cache (Redis in production).
LOGIN_MAX_FAILURES = env.int("LOGIN_MAX_FAILURES", default=5)
LOGIN_MAX_FAILURES_PER_CLIENT = env.int("LOGIN_MAX_FAILURES_PER_CLIENT", default=20)
LOGIN_FAILURE_WINDOW = env.int("LOGIN_FAILURE_WINDOW", default=15 * 60)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=15 * 60)

# E-mail: EMAIL_URL (smtp+tls://user:password@host:587, smtp+ssl://..., consolemail://) or
# EMAIL_BACKEND; by default messages are printed on the console, enough for the demo.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
# Where django.core.mail.backends.filebased.EmailBackend writes each message, as a file
# (EMAIL_URL=filemail://... sets it too).
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
if env.str("EMAIL_URL", default=""):
    # EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS...
    globals().update(env.email_url("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="leaderboard@localhost")
# The site's address as its users reach it, for the links of e-mails sent without a request
# (the worker's notifications): https://leaderboard.example.org. By default the first of
# ALLOWED_HOSTS over https in production, the demo's address otherwise.
_first_host = next((h for h in ALLOWED_HOSTS if h and h != "*" and not h.startswith(".")), "")
SITE_URL = env.str(
    "SITE_URL",
    default=f"https://{_first_host}" if IS_PRODUCTION and _first_host else "http://127.0.0.1:8000",
).rstrip("/")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# Static files and uploads ------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "leaderboard.board.staticfinders.PlotlyJsFinder",
]
# COLLECTED_STATIC (default: when DEBUG is off): the pages link static files under hashed
# names (main.3f2a9c.css) from the manifest that `collectstatic` writes into STATIC_ROOT,
# with gzip and brotli copies beside them; WhiteNoise serves those copies to browsers that
# accept them, and hashed names with a far-future, immutable Cache-Control. Without a
# `collectstatic` the pages cannot render (a missing manifest entry is an error), so the
# production image runs it when it is built and `manage.py demo` before it serves. Off:
# plain names, and WhiteNoise serves the files straight from the finders.
COLLECTED_STATIC = env.bool("COLLECTED_STATIC", default=not DEBUG)
WHITENOISE_USE_FINDERS = not COLLECTED_STATIC
# Source maps are read by a browser's developer tools only: served as they are, not
# compressed, which halves the time collectstatic takes.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = [*Compressor.SKIP_COMPRESS_EXTENSIONS, "map"]
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))

AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "location": env.str("AWS_LOCATION", default="uploads"),
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="")
            or env.str("AWS_ENDPOINT_URL", default="")
            or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
STORAGES: dict[str, dict[str, Any]] = {  # typed as Django's own
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if COLLECTED_STATIC
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Uploads: the limit is enforced while the request body streams in
# (leaderboard.board.uploads), so an oversized file is never held whole in memory or on disk.
MAX_UPLOAD_BYTES = env.int("MAX_UPLOAD_MB", default=64) * 1024 * 1024
# Container track: a `docker save` archive has its own, larger limit, on its own addresses
# (POST /api/submissions/images/, /submit/?track=container); every other body is refused
# past MAX_UPLOAD_BYTES, or DATA_UPLOAD_MAX_MEMORY_SIZE when it carries no file.
CONTAINER_MAX_UPLOAD_BYTES = env.int("CONTAINER_MAX_UPLOAD_MB", default=2048) * 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "leaderboard.board.uploads.SizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
# Seconds a request body may stop arriving before it is given up with a 408 (each read waits
# at most this long; leaderboard.board.bodies, under gunicorn).
REQUEST_BODY_TIMEOUT = env.float("REQUEST_BODY_TIMEOUT", default=20.0)

# Submission rules --------------------------------------------------------------------------
SUBMISSIONS_PER_DAY = env.int("SUBMISSIONS_PER_DAY", default=5)
FAILED_SUBMISSIONS_PER_DAY = env.int("FAILED_SUBMISSIONS_PER_DAY", default=10)
# A team's limits, for all its members together, on top of each member's own.
TEAM_SUBMISSIONS_PER_DAY = env.int("TEAM_SUBMISSIONS_PER_DAY", default=SUBMISSIONS_PER_DAY)
TEAM_FAILED_SUBMISSIONS_PER_DAY = env.int(
    "TEAM_FAILED_SUBMISSIONS_PER_DAY", default=FAILED_SUBMISSIONS_PER_DAY
)
TEAM_INVITATION_DAYS = env.int("TEAM_INVITATION_DAYS", default=14)
AUTO_PUBLISH = env.bool("AUTO_PUBLISH", default=True)

# Scoring -----------------------------------------------------------------------------------
SCORING_REPLICATES = env.int("SCORING_REPLICATES", default=1000)
SCORING_SOFT_TIME_LIMIT = env.int("SCORING_SOFT_TIME_LIMIT", default=600)
SCORING_TIME_LIMIT = env.int("SCORING_TIME_LIMIT", default=660)
SCORING_MAX_ATTEMPTS = env.int("SCORING_MAX_ATTEMPTS", default=3)
# A run still "running" this long after it started belongs to a worker that died.
SCORING_LEASE = timedelta(seconds=env.int("SCORING_LEASE", default=SCORING_TIME_LIMIT + 60))
# A queued run whose message was sent this long ago without being picked up is sent again
# (a lost message costs nothing more than a duplicate, which the worker ignores).
SCORING_RESEND_AFTER = timedelta(seconds=env.int("SCORING_RESEND_AFTER", default=600))
REAPER_INTERVAL = env.int("REAPER_INTERVAL", default=60)
# Fair queuing per task (services.fair_queue): runs of one task sent to the broker or running
# at a time, for new entries and for a re-score of many entries; the others wait their turn.
SCORING_IN_FLIGHT_PER_TASK = env.int("SCORING_IN_FLIGHT_PER_TASK", default=4)
RESCORE_IN_FLIGHT_PER_TASK = env.int("RESCORE_IN_FLIGHT_PER_TASK", default=8)

# Container runs (leaderboard.containers): limits of each scenario's run, and where the
# worker unpacks inputs and outputs (a local path the Docker engine sees at the same place).
CONTAINER_CPUS = env.float("CONTAINER_CPUS", default=2.0)
CONTAINER_MEMORY_MB = env.int("CONTAINER_MEMORY_MB", default=8192)
CONTAINER_PIDS = env.int("CONTAINER_PIDS", default=128)
# The OCI runtime models run under (e.g. runsc for gVisor, crun), registered with the engine
# (docs/operations.md); empty: the engine's default. An engine without it refuses to run.
CONTAINER_RUNTIME = env.str("CONTAINER_RUNTIME", default="")
# Disk I/O limits on the engine host's block device holding its data root (e.g.
# /dev/nvme0n1; empty: none), in MiB/s and operations/s, read and write each (0: none).
CONTAINER_IO_DEVICE = env.str("CONTAINER_IO_DEVICE", default="")
CONTAINER_IO_MBPS = env.int("CONTAINER_IO_MBPS", default=0)
CONTAINER_IO_IOPS = env.int("CONTAINER_IO_IOPS", default=0)
# The uid:gid every model runs as, whatever the worker's own (never root).
CONTAINER_RUN_USER = env.str("CONTAINER_RUN_USER", default="65534:65534")
CONTAINER_WALL_TIME = env.int("CONTAINER_WALL_TIME", default=3600)
CONTAINER_WORK_DIR = Path(env.str("CONTAINER_WORK_DIR", default=str(VAR_DIR / "container-runs")))
# A container run holds its worker for up to five scenarios' wall time, the image load and
# the scoring: its Celery limits and its lease are longer than a file's.
CONTAINER_SOFT_TIME_LIMIT = env.int(
    "CONTAINER_SOFT_TIME_LIMIT", default=5 * CONTAINER_WALL_TIME + SCORING_SOFT_TIME_LIMIT
)
CONTAINER_TIME_LIMIT = env.int("CONTAINER_TIME_LIMIT", default=CONTAINER_SOFT_TIME_LIMIT + 60)
CONTAINER_LEASE = timedelta(seconds=env.int("CONTAINER_LEASE", default=CONTAINER_TIME_LIMIT + 60))

# Celery ------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
    }
else:
    # Redis redelivers a message not acknowledged within the visibility timeout: longer
    # than the longest run (a container run), so that a run still going is not delivered
    # twice. A dead worker's runs do not wait for it: the reaper re-queues them after
    # their lease.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": max(SCORING_TIME_LIMIT, CONTAINER_TIME_LIMIT) + 600
    }
CELERY_BROKER_CONNECTION_TIMEOUT = 5
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="leaderboard")
# The reference baselines train on a queue of their own (manage.py demo starts a worker for
# it), so that a participant's entry never waits behind an hour of training.
BASELINES_QUEUE = env.str("CELERY_BASELINES_QUEUE", default="baselines")
# Queues by kind of work (docs/operations.md, "Adding a worker host"): scoring of prediction
# files (the default queue), board refreshes, and container runs on CPU and on GPU hosts.
# A host serves the kinds it is started with (bin/worker --queues scoring,cpu-runs).
SCORING_QUEUE = CELERY_TASK_DEFAULT_QUEUE
REFRESH_QUEUE = env.str("CELERY_REFRESH_QUEUE", default=f"{CELERY_TASK_DEFAULT_QUEUE}.refresh")
CPU_RUNS_QUEUE = env.str("CELERY_CPU_RUNS_QUEUE", default=f"{CELERY_TASK_DEFAULT_QUEUE}.cpu-runs")
GPU_RUNS_QUEUE = env.str("CELERY_GPU_RUNS_QUEUE", default=f"{CELERY_TASK_DEFAULT_QUEUE}.gpu-runs")
WORK_QUEUES = {
    "scoring": SCORING_QUEUE,
    "refresh": REFRESH_QUEUE,
    "cpu-runs": CPU_RUNS_QUEUE,
    "gpu-runs": GPU_RUNS_QUEUE,
    "baselines": BASELINES_QUEUE,
}
# A worker started without --queues serves these: everything but GPU runs (a GPU host says
# so: bin/worker --gpus N) and the baselines' training.
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name, type="direct"), routing_key=name)
    for name in (SCORING_QUEUE, REFRESH_QUEUE, CPU_RUNS_QUEUE)
]
# A scoring run goes to the scoring queue, or for a container entry to the CPU or GPU runs'
# queue (leaderboard.board.routing); the other tasks by name.
CELERY_TASK_ROUTES = (
    "leaderboard.board.routing.route_task",
    {
        "board.baseline_job_run": {"queue": BASELINES_QUEUE},
        "board.refresh": {"queue": REFRESH_QUEUE},
    },
)
# A host that has not announced itself for this long counts as gone (a GPU run then says it
# waits for a GPU worker). Workers announce themselves every WORKER_HEARTBEAT seconds.
WORKER_HEARTBEAT = env.int("WORKER_HEARTBEAT", default=30)
WORKER_HOST_STALE = timedelta(seconds=env.int("WORKER_HOST_STALE", default=4 * WORKER_HEARTBEAT))
# The GPUs of this host (bin/worker --gpus sets it), and the backend of container runs
# (leaderboard.containers.executor: "docker", the host's Docker engine).
WORKER_GPUS = env.int("WORKER_GPUS", default=0)
CONTAINER_EXECUTOR = env.str("CONTAINER_EXECUTOR", default="docker")
# One job trains a model and runs it through the gateway in every scenario: minutes.
BASELINE_JOB_SOFT_TIME_LIMIT = env.int("BASELINE_JOB_SOFT_TIME_LIMIT", default=3 * 3600)
# Jobs queued or running at a time: the processes of the workers on the baselines queue.
BASELINE_JOBS_AT_ONCE = env.int("BASELINE_JOBS_AT_ONCE", default=2)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_SOFT_TIME_LIMIT = SCORING_SOFT_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = SCORING_TIME_LIMIT
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 1}
# Long jobs: a worker process reserves one message at a time, acknowledged when the job is
# done (acks_late above), so a busy or drained host holds no runs another could take.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    "reap-scoring-runs": {"task": "board.reap", "schedule": float(REAPER_INTERVAL)},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Production needs real servers -------------------------------------------------------------
if IS_PRODUCTION:
    _problems = []
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        _problems.append("DATABASE_URL must point at PostgreSQL (postgres://...)")
    if CELERY_BROKER_URL.split("://")[0] not in ("redis", "rediss", "amqp", "amqps", "pyamqp"):
        _problems.append("CELERY_BROKER_URL must point at Redis (redis://) or RabbitMQ (amqp://)")
    if not AWS_STORAGE_BUCKET_NAME:
        _problems.append("AWS_STORAGE_BUCKET_NAME must name the S3 bucket for uploads")
    if not ALLOWED_HOSTS:
        _problems.append("ALLOWED_HOSTS must list the site's host names")
    if _problems:
        raise ImproperlyConfigured("production settings: " + "; ".join(_problems))
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# Cache (leaderboard tables) ----------------------------------------------------------------
# The ranked boards and their rendered tables are cached under keys that change with the
# board, so the cache must be shared by every web process to be rebuilt only once: Redis
# (Django's built-in RedisCache) from CACHE_URL, or from REDIS_URL; otherwise a cache per
# process (LocMemCache), right for development and the tests.
if env.str("CACHE_URL", default=""):
    CACHES = {"default": env.cache_url("CACHE_URL")}
    # django-environ leaves ?key_prefix=, ?timeout= and ?version= in lower case, where
    # Django does not look for them.
    for option in ("key_prefix", "timeout", "version"):
        if option in CACHES["default"]:
            CACHES["default"][option.upper()] = CACHES["default"].pop(option)
    if CACHES["default"]["BACKEND"].endswith("RedisCache"):
        CACHES["default"]["BACKEND"] = "django.core.cache.backends.redis.RedisCache"
elif env.str("REDIS_URL", default=""):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env.str("REDIS_URL"),
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": 1000},
        }
    }
# Shared: every web process and the worker see one cache. Then readers keep each board's
# key in the cache for up to BOARD_KEY_SECONDS (every write to an entry or a run makes them
# read it again at once), and the worker rebuilds a board right after it changes. A cache
# per process cannot hear the worker's writes: there the key is read on every request.
BOARD_CACHE_SHARED = CACHES["default"]["BACKEND"].endswith("RedisCache")
BOARD_KEY_SECONDS = env.int("BOARD_KEY_SECONDS", default=30 if BOARD_CACHE_SHARED else 0)
# How long the header's Tasks menu is cached: a newly current benchmark's tasks are in it
# within this time (0: read on every page).
NAV_TASKS_SECONDS = env.int("NAV_TASKS_SECONDS", default=60)

# REST API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "leaderboard.board.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_ANON_RATE", default="120/minute"),
        "user": env.str("API_USER_RATE", default="600/minute"),
        "submissions": env.str("API_SUBMISSION_RATE", default="30/minute"),
        "login": env.str("API_LOGIN_RATE", default="20/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MedMod leaderboard API",
    "DESCRIPTION": (
        "Submit prediction files for the five MedMod tasks, follow their scoring and read the "
        "leaderboards. Authenticate with `Authorization: Token <key>` (see /accounts/token/)."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Logging -----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
