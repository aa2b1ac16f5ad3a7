#!/usr/bin/env bash
# Runs the console against the local stack: the django-q2 worker in the background, the web server in front.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
eval "$($PY -m devstack env)"
PORT="${CONSOLE_PORT:-8000}"
ZENITH_BASE_DOMAIN="$($PY -c 'from devstack import config; print(config.ZENITH_BASE_DOMAIN)')"

$PY manage.py qcluster &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT INT TERM

cat <<TXT

  BinderAdmin console: http://127.0.0.1:$PORT/
  Sign in through Keycloak as:
    alice / alice-password   (console admin)
    bob   / bob-password     (normal user)
  Keycloak admin console: $KEYCLOAK_URL/admin/  (admin / admin)

  Register the local cluster on the Clusters page with the kubeconfig in
    $DEVSTACK_KUBECONFIG
  exposure Zenith, and Zenith base domain $ZENITH_BASE_DOMAIN (or none).
  No Zenith runs here: to expose launched platforms' services, run in another terminal
    $PY -m devstack zenith --watch
  which marks each platform's Reservations Ready at https://<service>-<platform>.$ZENITH_BASE_DOMAIN
  (nothing answers there: no pod runs in the local stack).

  Ctrl-C stops the web server and the worker; then stop the local stack with: make down

TXT
$PY manage.py runserver "127.0.0.1:$PORT"
