"""Settings read the environment strictly, and production refuses to start without its secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from binderadmin import settings as app_settings

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_SECRETS = {
    "DJANGO_SECRET_KEY": "x" * 50,
    "OIDC_RP_CLIENT_SECRET": "console-secret",
    "KEYCLOAK_ADMIN_CLIENT_SECRET": "admin-secret",
    "FIELD_ENCRYPTION_KEYS": "ZGV2LW9ubHktaW5zZWN1cmUta2V5LTMyLWJ5dGVzISE=",
}


def load_settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION_SECRETS and not k.endswith("_FILE")}
    return subprocess.run(
        [sys.executable, "-c", "import binderadmin.settings as s; print(s.DEBUG, s.DATABASES['default']['ENGINE'])"],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
    )


def test_env_bool_rejects_unclear_values(monkeypatch):
    monkeypatch.setenv("SOME_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured):
        app_settings.env_bool("SOME_FLAG")


def test_env_bool_reads_true_and_false(monkeypatch):
    monkeypatch.setenv("SOME_FLAG", "Yes")
    assert app_settings.env_bool("SOME_FLAG") is True
    monkeypatch.setenv("SOME_FLAG", "0")
    assert app_settings.env_bool("SOME_FLAG", True) is False


def test_env_int_rejects_words(monkeypatch):
    monkeypatch.setenv("SOME_NUMBER", "ten")
    with pytest.raises(ImproperlyConfigured):
        app_settings.env_int("SOME_NUMBER", 1)


def test_development_defaults_start_with_sqlite():
    result = load_settings({"BINDERADMIN_PRODUCTION": "false", "DATABASE_URL": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "django.db.backends.sqlite3"]


def test_production_refuses_to_start_without_secrets():
    result = load_settings({"BINDERADMIN_PRODUCTION": "true"})
    assert result.returncode != 0
    for name in PRODUCTION_SECRETS:
        assert name in result.stderr


def test_production_starts_with_secrets_and_postgres_url():
    result = load_settings(
        {
            "BINDERADMIN_PRODUCTION": "true",
            "DATABASE_URL": "postgres://u:p@db.example.org/console",
            **PRODUCTION_SECRETS,
        }
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "django.db.backends.postgresql"]


def test_secret_can_come_from_a_mounted_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    env = {**PRODUCTION_SECRETS, "BINDERADMIN_PRODUCTION": "true"}
    del env["OIDC_RP_CLIENT_SECRET"]
    env["OIDC_RP_CLIENT_SECRET_FILE"] = str(secret_file)
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION_SECRETS}
    result = subprocess.run(
        [sys.executable, "-c", "import binderadmin.settings as s; print(s.OIDC_RP_CLIENT_SECRET)"],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from-a-file"


def test_redis_url_switches_the_task_broker():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import binderadmin.settings as s; print(s.Q_CLUSTER.get('redis'), s.Q_CLUSTER.get('orm'))",
        ],
        cwd=REPO,
        env={**os.environ, "REDIS_URL": "redis://127.0.0.1:6379/0"},
        capture_output=True,
        text=True,
    )
    assert result.stdout.split() == [
        "redis://127.0.0.1:6379/0?socket_timeout=5&socket_connect_timeout=5",
        "None",
    ]


def test_redis_timeouts_keep_those_the_url_sets():
    result = subprocess.run(
        [sys.executable, "-c", "import binderadmin.settings as s; print(s.REDIS_URL)"],
        cwd=REPO,
        env={**os.environ, "REDIS_URL": "rediss://:pw@redis:6380/2?socket_timeout=9", "REDIS_TIMEOUT_SECONDS": "3"},
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == "rediss://:pw@redis:6380/2?socket_timeout=9&socket_connect_timeout=3"


def test_keycloak_backchannel_url_moves_the_server_calls_but_not_the_browser_or_the_issuer():
    names = ("OIDC_OP_ISSUER", "OIDC_OP_AUTHORIZATION_ENDPOINT", "OIDC_OP_TOKEN_ENDPOINT", "OIDC_OP_JWKS_ENDPOINT")
    result = subprocess.run(
        [sys.executable, "-c", f"import binderadmin.settings as s; print(*(getattr(s, n) for n in {names!r}))"],
        cwd=REPO,
        env={
            **os.environ,
            "KEYCLOAK_URL": "https://id.example.org",
            "KEYCLOAK_BACKCHANNEL_URL": "http://kc:8080/",
            "KEYCLOAK_REALM": "binderadmin",
        },
        capture_output=True,
        text=True,
    )
    oidc = "realms/binderadmin/protocol/openid-connect"
    assert result.stdout.split() == [
        "https://id.example.org/realms/binderadmin",
        f"https://id.example.org/{oidc}/auth",
        f"http://kc:8080/{oidc}/token",
        f"http://kc:8080/{oidc}/certs",
    ]


def test_deploy_checks_pass_with_production_settings():
    env = {
        **{k: v for k, v in os.environ.items() if k not in PRODUCTION_SECRETS},
        **PRODUCTION_SECRETS,
        "BINDERADMIN_PRODUCTION": "true",
        "DJANGO_SECRET_KEY": "k3y-" + "".join(chr(97 + i % 26) + str(i) for i in range(40)),
        "DJANGO_ALLOWED_HOSTS": "console.example.org",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
