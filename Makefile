# BinderAdmin: `make run` brings up the local stack and the console; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The local stack runs a real node (containerd, kubelet) so launched platforms' pods run; on a machine
# that cannot (no root, no kernel support) `up` says why in one line and the rest works without it.
# Skip it with: make run DEVSTACK_NODE=0 (or make test DEVSTACK_NODE=0).
DEVSTACK_NODE ?= 1
export DEVSTACK_NODE

.PHONY: run test lint down status clean chromium redis

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP) redis
	$(PY) -m devstack up
	$(PY) manage.py migrate --noinput
	bash devstack/run-console.sh

test: $(STAMP) lint chromium redis
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest

# The browser tests drive Debian's Chromium (Playwright's own browser download does not work here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The local stack runs Debian's redis-server, the worker tests' second broker.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing Debian's redis-server for the local stack"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; }

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

down: $(STAMP)
	$(PY) -m devstack down

status: $(STAMP)
	$(PY) -m devstack status

clean: down
	rm -rf $(VENV) db.sqlite3
