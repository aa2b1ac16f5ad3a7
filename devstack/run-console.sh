#!/usr/bin/env bash
# Runs the console against the local stack: the django-q2 worker in the background, the web server in front.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
eval "$($PY -m devstack env)"
PORT="${CONSOLE_PORT:-8000}"
ZENITH_BASE_DOMAIN="$($PY -c 'from devstack import config; print(config.ZENITH_BASE_DOMAIN)')"
if [ -n "${NODE_HELM_EXECUTABLE:-}" ]; then
  NODE_TEXT="The local node runs the platforms' pods: BinderHub stays paused (its image cannot be built here),
  JupyterHub runs. On a machine that cannot run the node (no root, no kernel support): make run DEVSTACK_NODE=0"
else
  NODE_TEXT="No node runs (DEVSTACK_NODE=0, or this machine cannot: see the 'devstack: no node' line above), so no
  pod runs: the platforms install, but their addresses answer 502. With root: make run DEVSTACK_NODE=1"
fi

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
  which marks each platform's Reservations Ready and serves them in plain http on this machine at
    http://<service>-<platform>.$ZENITH_BASE_DOMAIN:$ZENITH_LINK_PORT/
  (browsers send every *.localhost name to this machine), where the platform page links.
  $NODE_TEXT

  Ctrl-C stops the web server and the worker; then stop the local stack with: make down

TXT
$PY manage.py runserver "127.0.0.1:$PORT"
