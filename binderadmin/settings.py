"""Django settings for BinderAdmin, read from the environment (every name is in .env.example)."""

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    """Return the variable as a string, or the default when unset or empty."""
    return os.environ.get(name, "") or default


def env_bool(name: str, default: bool = False) -> bool:
    """Return the variable as a boolean; anything but true/false/1/0/yes/no is an error."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int) -> int:
    """Return the variable as an integer, or the default when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None


def env_secret(name: str, dev_default: str) -> str:
    """Return a secret from NAME, or from the file named by NAME_FILE (Kubernetes secret mounts).

    In production there is no default: a missing secret is collected and reported at start-up.
    """
    value = os.environ.get(name, "")
    path = os.environ.get(f"{name}_FILE", "")
    if not value and path:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path} cannot be read: {exc}") from None
    if value:
        return value
    if PRODUCTION:
        MISSING_SECRETS.append(name)
        return ""
    return dev_default


# Production mode refuses to start without its secrets; development has safe loopback defaults
# that match the realm the local stack (devstack) imports.
PRODUCTION = env_bool("BINDERADMIN_PRODUCTION", False)
MISSING_SECRETS: list[str] = []

SECRET_KEY = env_secret("DJANGO_SECRET_KEY", "dev-only-insecure-secret-key-do-not-use-in-production")
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
ALLOWED_HOSTS = [h.strip() for h in env_str("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")]
CSRF_TRUSTED_ORIGINS = [o for o in env_str("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
# htmx sends the CSRF token from the page (hx-headers on <body>), so no script needs the cookie.
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
# The kubelet probes pods over plain HTTP: the health check must answer it, not redirect it to HTTPS.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600)
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "mozilla_django_oidc",
    "django_htmx",
    "django_q",
    "platforms",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "platforms.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "platforms.refusals.OversizedPostMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "platforms.middleware.KeycloakSessionCheckMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "platforms.refusals.PermissionDeniedLogMiddleware",
]

ROOT_URLCONF = "binderadmin.urls"
WSGI_APPLICATION = "binderadmin.wsgi.application"

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
                "platforms.context_processors.console",
            ],
        },
    },
]

# SQLite by default; PostgreSQL (or anything dj-database-url knows) through DATABASE_URL.
DATABASES = {
    "default": dj_database_url.parse(env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"), conn_max_age=60)
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write at the same time: wait for the lock instead of failing,
    # and take it at the start of each transaction so two writers cannot deadlock.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    # A file, not memory, so a real worker process in the integration tests sees the test data;
    # TEST_DATABASE_PATH gives a second test run on the same checkout its own.
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_PATH", str(BASE_DIR / "test-db.sqlite3"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# collectstatic's target in production; in development WhiteNoise serves straight from the finders.
STATIC_ROOT = env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")) if PRODUCTION else None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Keycloak and OpenID Connect (mozilla-django-oidc) -----------------------------------------
KEYCLOAK_URL = env_str("KEYCLOAK_URL", "http://127.0.0.1:18080").rstrip("/")
KEYCLOAK_REALM = env_str("KEYCLOAK_REALM", "binderadmin")
KEYCLOAK_ADMIN_CLIENT_ID = env_str("KEYCLOAK_ADMIN_CLIENT_ID", "binderadmin-admin")
KEYCLOAK_ADMIN_CLIENT_SECRET = env_secret("KEYCLOAK_ADMIN_CLIENT_SECRET", "dev-admin-secret")
KEYCLOAK_TIMEOUT_SECONDS = env_int("KEYCLOAK_TIMEOUT_SECONDS", 10)
ADMIN_GROUP = env_str("BINDERADMIN_ADMIN_GROUP", "/admins")

OIDC_OP_ISSUER = f"{KEYCLOAK_URL}/realms/{KEYCLOAK_REALM}"
# Keycloak as the platforms' JupyterHub pods reach it from inside their clusters (token and userinfo
# calls); empty: KEYCLOAK_URL, which the clusters must then reach.
KEYCLOAK_URL_FROM_CLUSTERS = env_str("KEYCLOAK_URL_FROM_CLUSTERS", "").rstrip("/")
# How the console links to a service Zenith exposes: https://<fqdn>, Zenith's TLS proxy. The local
# stack's relay (`python -m devstack zenith --watch`) serves plain http on a loopback port instead.
ZENITH_LINK_SCHEME = env_str("ZENITH_LINK_SCHEME", "https")
if ZENITH_LINK_SCHEME not in ("https", "http"):
    raise ImproperlyConfigured(f"ZENITH_LINK_SCHEME must be https or http, not {ZENITH_LINK_SCHEME!r}")
ZENITH_LINK_PORT = env_int("ZENITH_LINK_PORT", 0)
if not 0 <= ZENITH_LINK_PORT <= 65535:
    raise ImproperlyConfigured(f"ZENITH_LINK_PORT must be a port (0: the scheme's own), not {ZENITH_LINK_PORT}")
# The NodePorts the console picks from for the platforms' registries (the Kubernetes default range).
REGISTRY_NODE_PORT_MIN = env_int("REGISTRY_NODE_PORT_MIN", 30000)
REGISTRY_NODE_PORT_MAX = env_int("REGISTRY_NODE_PORT_MAX", 32767)
# Keycloak as the console's own processes reach it (token, userinfo, signing keys, admin API) when that
# is not the address browsers use, e.g. a console in a cluster calling Keycloak's Service there. ID
# tokens still name KEYCLOAK_URL as their issuer (Keycloak's fixed hostname). Empty: KEYCLOAK_URL.
KEYCLOAK_BACKCHANNEL_URL = env_str("KEYCLOAK_BACKCHANNEL_URL", "").rstrip("/") or KEYCLOAK_URL
_oidc = f"{OIDC_OP_ISSUER}/protocol/openid-connect"
_oidc_backchannel = f"{KEYCLOAK_BACKCHANNEL_URL}/realms/{KEYCLOAK_REALM}/protocol/openid-connect"
OIDC_OP_AUTHORIZATION_ENDPOINT = f"{_oidc}/auth"
OIDC_OP_TOKEN_ENDPOINT = f"{_oidc_backchannel}/token"
OIDC_OP_USER_ENDPOINT = f"{_oidc_backchannel}/userinfo"
OIDC_OP_JWKS_ENDPOINT = f"{_oidc_backchannel}/certs"
OIDC_OP_LOGOUT_ENDPOINT = f"{_oidc}/logout"
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID", "binderadmin-console")
OIDC_RP_CLIENT_SECRET = env_secret("OIDC_RP_CLIENT_SECRET", "dev-console-secret")
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = "openid email profile groups"
OIDC_USE_PKCE = True
OIDC_STORE_ID_TOKEN = True  # needed as id_token_hint for RP-initiated logout
OIDC_TIMEOUT = KEYCLOAK_TIMEOUT_SECONDS
OIDC_OP_LOGOUT_URL_METHOD = "platforms.oidc_backend.keycloak_logout_url"
# How often a signed-in session is re-checked against Keycloak with its refresh token, so that a
# disabled user or an ended Keycloak session loses console access within this many seconds.
OIDC_RECHECK_SECONDS = env_int("OIDC_RECHECK_SECONDS", 120)

AUTHENTICATION_BACKENDS = ["platforms.oidc_backend.KeycloakOIDCBackend"]
LOGIN_URL = "oidc_authentication_init"
LOGIN_REDIRECT_URL = "platform_list"
LOGIN_REDIRECT_URL_FAILURE = "login_failed"
LOGOUT_REDIRECT_URL = "logged_out"

# --- Stored secrets ------------------------------------------------------------------------------
# Fernet keys (comma-separated, newest first): new data is encrypted with the first, old data is
# still read with the others, so a key can be rotated without losing what is stored.
FIELD_ENCRYPTION_KEYS = [
    k.strip()
    for k in env_secret("FIELD_ENCRYPTION_KEYS", "ZGV2LW9ubHktaW5zZWN1cmUta2V5LTMyLWJ5dGVzISE=").split(",")
    if k.strip()
]

# --- Launch form limits (admin-configurable upper bounds of the options) ---------------------------
LAUNCH_MAX_CPUS = env_int("LAUNCH_MAX_CPUS", 64)
LAUNCH_MAX_RAM_GB = env_int("LAUNCH_MAX_RAM_GB", 512)
LAUNCH_MAX_STORAGE_GB = env_int("LAUNCH_MAX_STORAGE_GB", 2000)
LAUNCH_MAX_SERVERS_PER_USER = env_int("LAUNCH_MAX_SERVERS_PER_USER", 100)
# How long a cluster check may wait for the API server, in seconds.
CLUSTER_CHECK_TIMEOUT_SECONDS = env_int("CLUSTER_CHECK_TIMEOUT_SECONDS", 5)
# The API server hosts a kubeconfig may point at: host names or IPs, and `.example.org` for any host
# under a domain; empty allows any host.
CLUSTER_API_HOSTS = [host.strip().lower() for host in env_str("CLUSTER_API_HOSTS", "").split(",") if host.strip()]

# --- Helm -------------------------------------------------------------------------------------------
HELM_EXECUTABLE = env_str("HELM_EXECUTABLE", "helm")
HELM_TIMEOUT_SECONDS = env_int("HELM_TIMEOUT_SECONDS", 600)
# helm's own check of every manifest against the cluster's OpenAPI document before an install or
# upgrade. Off by default: helm fetches and parses the whole document at every deploy, a third of its
# CPU (bench/deploy_ten.py), and the API server validates each object itself as it is created; the
# test suite dry-runs every object the charts render for the console's options through the API server.
HELM_OPENAPI_VALIDATION = env_bool("HELM_OPENAPI_VALIDATION", False)

# --- App versions: the application chart's versions, read from its Helm chart repository ----------
APP_CHART_REPO_URL = env_str("APP_CHART_REPO_URL", "http://127.0.0.1:18081").rstrip("/")
APP_CHART_NAME = env_str("APP_CHART_NAME", "binderhub-platform")
APP_VERSIONS_INCLUDE_PRERELEASES = env_bool("APP_VERSIONS_INCLUDE_PRERELEASES", False)
# The repository's index is read at most this often; a refresh in the UI reads it at once.
APP_VERSIONS_CACHE_SECONDS = env_int("APP_VERSIONS_CACHE_SECONDS", 300)

# How long an uninstall waits for the platform's namespace to be gone before reporting it stuck.
NAMESPACE_DELETE_TIMEOUT_SECONDS = env_int("NAMESPACE_DELETE_TIMEOUT_SECONDS", 120)
# A queued operation no worker has taken for this long is handed to the worker again (its task may
# have been lost); one a worker took is sent again as soon as that worker is found dead.
QUEUED_OPERATION_GRACE_SECONDS = env_int("QUEUED_OPERATION_GRACE_SECONDS", 300)
# An operation stopped only because Keycloak or a cluster did not answer is retried this many
# times, the first after this many seconds, each later one after twice the wait before it.
OPERATION_RETRIES = env_int("OPERATION_RETRIES", 3)
OPERATION_RETRY_SECONDS = env_int("OPERATION_RETRY_SECONDS", 30)
# A worker cluster renews its lease this often; one whose lease (WORKER_LEASE_SECONDS) ran out is
# dead, and reconcile sends the operations it had taken again.
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 3)
WORKER_LEASE_SECONDS = env_int("WORKER_LEASE_SECONDS", 10)
# The longest a reconcile pass may run; a pass that dies holding the lock frees it after this.
RECONCILE_PASS_MAX_SECONDS = env_int("RECONCILE_PASS_MAX_SECONDS", 120)
# How many clusters a reconcile pass asks at the same time.
RECONCILE_CLUSTERS_AT_ONCE = env_int("RECONCILE_CLUSTERS_AT_ONCE", 8)
# How often a page watching a platform may trigger a check of its service links, in seconds.
LINK_SYNC_MIN_INTERVAL_SECONDS = env_int("LINK_SYNC_MIN_INTERVAL_SECONDS", 3)
# How often the worker checks that Keycloak still has the platforms' groups and clients, in seconds.
ACCESS_CHECK_INTERVAL_SECONDS = env_int("ACCESS_CHECK_INTERVAL_SECONDS", 300)
# Usage of each platform's JupyterHub, read by the worker (pages show the stored numbers): how long a
# reading is good for, how long one hub may take to answer, and how many hubs are asked at once.
USAGE_REFRESH_SECONDS = env_int("USAGE_REFRESH_SECONDS", 120)
USAGE_TIMEOUT_SECONDS = env_int("USAGE_TIMEOUT_SECONDS", 5)
USAGE_HUBS_AT_ONCE = env_int("USAGE_HUBS_AT_ONCE", 8)

# --- Background work (django-q2): the ORM broker by default, Redis when REDIS_URL is set ----------
# Without socket timeouts a Redis that stops answering (frozen, a dropped route) hangs every request
# and the health probe with it; the broker's blocking pop waits 1 s, well within these.
REDIS_TIMEOUT_SECONDS = env_int("REDIS_TIMEOUT_SECONDS", 5)


def with_redis_timeouts(url: str) -> str:
    """The Redis URL with socket and connect timeouts as query arguments (those it sets itself kept)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("socket_timeout", str(REDIS_TIMEOUT_SECONDS))
    query.setdefault("socket_connect_timeout", str(REDIS_TIMEOUT_SECONDS))
    return urlunsplit(parts._replace(query=urlencode(query)))


REDIS_URL = with_redis_timeouts(env_str("REDIS_URL", "")) if env_str("REDIS_URL", "") else ""
Q_CLUSTER = {
    # The queue's name: consoles (or test runs) sharing one Redis each need their own. django-q2 reads
    # Q_CLUSTER_NAME itself too; naming the cluster with it keeps both readings the same.
    "name": env_str("Q_CLUSTER_NAME", "binderadmin"),
    "workers": env_int("Q_WORKERS", 2),
    "timeout": HELM_TIMEOUT_SECONDS + 60,
    "retry": HELM_TIMEOUT_SECONDS + 120,
    "max_attempts": 1,
    "catch_up": False,
    "sync": env_bool("Q_SYNC", False),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
# The same brokers, also recording which worker cluster took each operation and that it lives (platforms.tasks).
Q_CLUSTER["broker_class"] = "platforms.tasks.TakerRecordingRedis" if REDIS_URL else "platforms.tasks.TakerRecordingORM"

# The cache holds sessions in front of the database (one query less on every page), cached app
# versions and rate limits: per process by default, shared through Redis when there is one.
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stdout"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

if MISSING_SECRETS:
    raise ImproperlyConfigured(
        "BINDERADMIN_PRODUCTION is on but these secrets are not set (as NAME or NAME_FILE): "
        + ", ".join(MISSING_SECRETS)
    )
