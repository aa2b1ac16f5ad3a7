#!/usr/bin/env bash
# Runs the console against the local stack: the django-q2 worker in the background, the web server in front.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
eval "$($PY -m devstack env)"
PORT="${CONSOLE_PORT:-8000}"

$PY manage.py qcluster &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT INT TERM

cat <<TXT

  BinderAdmin console: http://127.0.0.1:$PORT/
  Sign in through Keycloak as:
    alice / alice-password   (console admin)
    bob   / bob-password     (normal user)
  Keycloak admin console: $KEYCLOAK_URL/admin/  (admin / admin)
  Stop with Ctrl-C; stop the local stack with: .venv/bin/python -m devstack down

TXT
$PY manage.py runserver "127.0.0.1:$PORT"
