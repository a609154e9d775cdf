"""Settings, all from the environment (see README): nothing here needs editing to deploy."""

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url

from mailgrant.common.files import write_private_file

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


MAILGRANT_HOME = Path(os.environ.get("MAILGRANT_HOME", "./var")).resolve()
MAILGRANT_HOME.mkdir(mode=0o700, parents=True, exist_ok=True)  # common.home tightens an old one

MAILGRANT_LISTEN = os.environ.get("MAILGRANT_LISTEN", "127.0.0.1:8000")
MAILGRANT_BASE_URL = os.environ.get("MAILGRANT_BASE_URL", f"http://{MAILGRANT_LISTEN}").rstrip("/")
_base = urlsplit(MAILGRANT_BASE_URL)
if _base.scheme not in {"http", "https"} or not _base.hostname:
    raise RuntimeError(f"MAILGRANT_BASE_URL must be an http(s) URL, got {MAILGRANT_BASE_URL!r}")


def _secret_key() -> str:
    if key := os.environ.get("MAILGRANT_SECRET_KEY"):
        return key
    path = MAILGRANT_HOME / "secret_key"
    if not path.exists():
        write_private_file(path, secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = _env_bool("MAILGRANT_DEBUG")

ALLOWED_HOSTS = [_base.hostname, "127.0.0.1", "localhost", "[::1]"] + [
    h.strip() for h in os.environ.get("MAILGRANT_ALLOWED_HOSTS", "").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [f"{_base.scheme}://{_base.netloc}"]
if _base.scheme == "https":
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Browser security headers (review finding 13) -----------------------------------------
# HSTS once the public URL is https: browsers then never try plain http for this host.
if _base.scheme == "https":
    SECURE_HSTS_SECONDS = int(os.environ.get("MAILGRANT_HSTS_SECONDS", str(365 * 24 * 3600)))
# X-Forwarded-Proto is believed only when the operator says a proxy in front sets it (and
# overwrites what clients send); otherwise any client could claim https.
if _env_bool("MAILGRANT_TRUST_PROXY_PROTO"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# One strict policy for every page (django-csp, until Django 6.0 has its own): nothing inline,
# nothing from elsewhere; data: images are the uploaded sign-in button icons. A form may also
# post to where a page's own buttons lead (a provider's authorize URL), added per page.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",  # its Swagger UI files, served from here (whitenoise), not from a CDN
    "mailgrant.common",
    "mailgrant.oauth",
    "mailgrant.mailboxes",
    "mailgrant.directory",
    "mailgrant.sso",
    "mailgrant.notify",
    "mailgrant.api",
    "mailgrant.worker",
    "mailgrant.cli",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "mailgrant.common.csp.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "mailgrant.config.urls"
WSGI_APPLICATION = "mailgrant.config.wsgi.application"

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


def _database(url: str | None) -> dict[str, Any]:
    if not url:
        url = f"sqlite:///{MAILGRANT_HOME / 'mailgrant.sqlite3'}"
    # A server database's connections are kept (and checked before reuse): the worker's pool
    # threads would otherwise connect again for every fetch and every refresh.
    keep = int(os.environ.get("MAILGRANT_DATABASE_CONN_MAX_AGE", "300"))
    config: dict[str, Any] = dict(
        dj_database_url.parse(url, conn_max_age=keep, conn_health_checks=True)
    )
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # IMMEDIATE takes SQLite's write lock at BEGIN: a transaction that re-reads a grant
        # before refreshing it is serialized against every other writer, threads and
        # processes alike (select_for_update is a no-op on SQLite). WAL keeps readers free.
        # One connection per serving thread, kept: opening one (with its PRAGMAs) and closing
        # it (the last close checkpoints the WAL) on every request cost more than the request.
        config["CONN_MAX_AGE"] = None
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 60,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    return config


DATABASES = {"default": _database(os.environ.get("MAILGRANT_DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Directory people of "show in login" LDAP directories sign in with their directory password.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "mailgrant.directory.backends.DirectoryBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("MAILGRANT_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = MAILGRANT_HOME / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Serve straight from the apps' static folders too: `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = True

# Vault: newest key first. From the environment (comma separated) or a key file in MAILGRANT_HOME.
MAILGRANT_VAULT_KEYS = [
    k.strip() for k in os.environ.get("MAILGRANT_VAULT_KEYS", "").split(",") if k.strip()
]
MAILGRANT_VAULT_KEY_FILE = MAILGRANT_HOME / "vault.key"

# Outbound HTTP to providers: seconds.
MAILGRANT_HTTP_TIMEOUT = float(os.environ.get("MAILGRANT_HTTP_TIMEOUT", "15"))
# A token this close to expiry is refreshed before it is handed out (at most a tenth of its
# lifetime: oauth.schedule); the worker refreshes grants in use ahead of that.
MAILGRANT_REFRESH_MARGIN = int(os.environ.get("MAILGRANT_REFRESH_MARGIN", "300"))
# Refresh every idle grant at least this often (seconds; jittered a tenth earlier), so its
# refresh token never dies of disuse (Microsoft's after 90 days): oauth.schedule.
MAILGRANT_KEEPALIVE = int(os.environ.get("MAILGRANT_KEEPALIVE", str(7 * 24 * 3600)))
# Mail servers: seconds per network operation; messages per fetch batch (one commit, one sync).
MAILGRANT_MAIL_TIMEOUT = float(os.environ.get("MAILGRANT_MAIL_TIMEOUT", "30"))
MAILGRANT_FETCH_BATCH = int(os.environ.get("MAILGRANT_FETCH_BATCH", "200"))
# How many items (mailbox fetches, refreshes) one worker process works on at once.
MAILGRANT_WORKER_CONCURRENCY = int(os.environ.get("MAILGRANT_WORKER_CONCURRENCY", "8"))
# A worker's claim on an item lasts this many seconds unless its heartbeat renews it: a worker
# that dies loses its claims within it.
MAILGRANT_WORKER_LEASE = int(os.environ.get("MAILGRANT_WORKER_LEASE", "60"))
# A mailbox failing for a passing reason is tried again later and later, at most this late.
MAILGRANT_MAIL_BACKOFF_CAP = int(os.environ.get("MAILGRANT_MAIL_BACKOFF_CAP", "3600"))
# IMAP IDLE (mailboxes.idle): re-issued this often (RFC 2177: servers may drop an IDLE after
# 30 minutes); a session reconnects with a fresh token this long before its token expires; a
# worker's lease on a watched mailbox, renewed by its heartbeat; watches per worker at most.
MAILGRANT_IDLE_RENEW = int(os.environ.get("MAILGRANT_IDLE_RENEW", str(29 * 60)))
MAILGRANT_IDLE_TOKEN_MARGIN = int(os.environ.get("MAILGRANT_IDLE_TOKEN_MARGIN", "120"))
MAILGRANT_IDLE_LEASE = int(os.environ.get("MAILGRANT_IDLE_LEASE", "120"))
MAILGRANT_IDLE_MAX = int(os.environ.get("MAILGRANT_IDLE_MAX", "1000"))
# Where fetched messages are stored (rows hold paths relative to it: move the files with it).
MAILGRANT_MESSAGE_STORE = Path(
    os.environ.get("MAILGRANT_MESSAGE_STORE", str(MAILGRANT_HOME / "messages"))
).resolve()
# Events (the outbox: webhooks, GET /api/v1/events) are kept this long, in seconds.
MAILGRANT_EVENT_RETENTION = int(os.environ.get("MAILGRANT_EVENT_RETENTION", str(14 * 24 * 3600)))
# Alerts (notify.alerts): a reminder of an open incident at most this often, in seconds; the
# sender of alert emails sent through Django's own SMTP settings (EMAIL_* below).
MAILGRANT_ALERT_REMIND = int(os.environ.get("MAILGRANT_ALERT_REMIND", str(24 * 3600)))
# Django's SMTP settings: alert channels with no outgoing mailbox of their own send through them.
EMAIL_HOST = os.environ.get("MAILGRANT_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("MAILGRANT_EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("MAILGRANT_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("MAILGRANT_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = os.environ.get("MAILGRANT_EMAIL_STARTTLS", "") == "1"
EMAIL_USE_SSL = os.environ.get("MAILGRANT_EMAIL_SSL", "") == "1"
EMAIL_TIMEOUT = 30
DEFAULT_FROM_EMAIL = os.environ.get("MAILGRANT_EMAIL_FROM", "mailgrant@localhost")
# Webhooks: seconds a delivery may take; whether private, loopback and link-local addresses
# may be reached (off: an endpoint could otherwise probe the inside of the network); how many
# deliveries one endpoint has in flight at once in one worker (a slow one holds no more).
MAILGRANT_WEBHOOK_TIMEOUT = float(os.environ.get("MAILGRANT_WEBHOOK_TIMEOUT", "10"))
MAILGRANT_WEBHOOK_ALLOW_PRIVATE = _env_bool("MAILGRANT_WEBHOOK_ALLOW_PRIVATE")
MAILGRANT_WEBHOOK_IN_FLIGHT = int(os.environ.get("MAILGRANT_WEBHOOK_IN_FLIGHT", "4"))
# LDAP directories: seconds to connect and per operation.
MAILGRANT_LDAP_TIMEOUT = float(os.environ.get("MAILGRANT_LDAP_TIMEOUT", "15"))
# How long a started authorization (Validate) may take.
MAILGRANT_AUTHORIZATION_TTL = 600
# GET /api/v1/events holds back an event while an id before it may still be in an open
# transaction (PostgreSQL commits out of id order), for at most these seconds.
MAILGRANT_EVENTS_SETTLE = float(os.environ.get("MAILGRANT_EVENTS_SETTLE", "10"))
# Seconds a user create expression may run at sign-in before the sign-in is refused.
MAILGRANT_EXPRESSION_TIMEOUT = float(os.environ.get("MAILGRANT_EXPRESSION_TIMEOUT", "1"))

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/accounts/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- Error pages and logs with DEBUG on (review finding 9) ---------------------------------
DEFAULT_EXCEPTION_REPORTER_FILTER = "mailgrant.common.redaction.RedactingExceptionReporterFilter"
# The technical 500 page only for a signed-in superuser; everyone else gets the plain one.
DEFAULT_EXCEPTION_REPORTER = "mailgrant.common.redaction.SuperuserExceptionReporter"

MAILGRANT_LOG_LEVEL = os.environ.get("MAILGRANT_LOG_LEVEL", "INFO").upper()
# At INFO the HTTP libraries stay quiet; at DEBUG everything talks (still through the filter).
_library_level = "DEBUG" if MAILGRANT_LOG_LEVEL == "DEBUG" else "WARNING"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "mailgrant.common.redaction.RedactingLogFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": MAILGRANT_LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": MAILGRANT_LOG_LEVEL, "propagate": False},
        "httpcore": {"level": _library_level},
        "httpx": {"level": _library_level},
        # axes says at INFO what it counts on every start and try: WARNING keeps its lockouts.
        "axes": {"level": "WARNING"},
        # Never at DEBUG: with DEBUG on it logs every statement with its values inlined
        # (session keys, hashes, sealed secrets, mail), which no pattern can tell from data.
        "django.db.backends": {"level": "INFO"},
    },
}

# --- Limits: refreshes, started authorizations, password guessing (issue #11) -----------------

# A broker caller asking a longer validity than the provider's tokens have gets the provider's
# token, refreshed at most once this many seconds (per grant), however often it asks.
MAILGRANT_REFRESH_MIN_INTERVAL = int(os.environ.get("MAILGRANT_REFRESH_MIN_INTERVAL", "60"))

# Sign-ins started (by anyone: no account is needed) and not yet finished, at most this many
# from one client IP and this many in all; expired ones are purged first.
MAILGRANT_SIGN_IN_STARTS_PER_IP = int(os.environ.get("MAILGRANT_SIGN_IN_STARTS_PER_IP", "20"))
MAILGRANT_SIGN_IN_STARTS_MAX = int(os.environ.get("MAILGRANT_SIGN_IN_STARTS_MAX", "2000"))

# Password guessing on the login pages (django-axes; mailgrant.sso.lockout): after this many
# failed tries from one client IP, or against one username, further tries are refused (429)
# for this many seconds. Counted in the database, so every serving process sees the same count.
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = ["mailgrant.sso.lockout.LoginThrottle", *AUTHENTICATION_BACKENDS]
AXES_FAILURE_LIMIT = int(os.environ.get("MAILGRANT_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(seconds=int(os.environ.get("MAILGRANT_LOGIN_LOCKOUT_SECONDS", "900")))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_USERNAME_CALLABLE = "mailgrant.sso.lockout.login_username"
# Named, not axes' lazy default (which the error pages' setting filter cannot read).
AXES_USERNAME_FORM_FIELD = "username"
# mailgrant.sso.lockout resets only the signed-in username's failures (axes' own reset would
# also clear the IP's failures against other usernames).
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_TEMPLATE = "sso/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
# The client IP is the connection's (REMOTE_ADDR): a forwarded-for header is anyone's to write.
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
# Successful sign-ins are not logged by axes (the failures are what it is for).
AXES_DISABLE_ACCESS_LOG = True
