"""Starting, finding and stopping the local stack's processes by pid file, and waiting for them."""

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from devstack.config import HOST, LOG_DIR, PID_DIR


class DevstackError(Exception):
    """A problem with one clear line saying what to do; printed without a traceback."""


def pid_file(name: str) -> Path:
    return PID_DIR / f"{name}.pid"


def log_file(name: str) -> Path:
    return LOG_DIR / f"{name}.log"


def running_pid(name: str) -> int | None:
    """The pid of our process `name` if its pid file names a live process, else None."""
    path = pid_file(name)
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    # A recycled pid belongs to someone else: only trust it if it is still one of ours.
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    if f"DEVSTACK_PROCESS={name}".encode() not in environ:
        return None
    return pid


def command_line(pid: int) -> list[str]:
    """The arguments process `pid` was started with ([] if it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def check_port_free(name: str, port: int) -> None:
    """Fail with one clear line when another program holds the port that `name` needs."""
    if running_pid(name) is None and port_in_use(port):
        raise DevstackError(
            f"port {port} on {HOST} is in use by another program, so {name} cannot start: "
            "stop that program, or run `python -m devstack down` if it is an old devstack."
        )


def start(name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start `argv` in the background with its output in logs/<name>.log; return its pid."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    PID_DIR.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {}), "DEVSTACK_PROCESS": name}
    with open(log_file(name), "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(argv)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            start_new_session=True,  # survives the shell that ran `devstack up`
        )
    pid_file(name).write_text(str(process.pid))
    _wait_for_environ(process)
    return process.pid


def _wait_for_environ(process: subprocess.Popen, timeout: float = 2) -> None:
    # Popen returns as soon as exec begins, but the kernel fills /proc/<pid>/environ only once the
    # new program is loaded; until then running_pid() would not recognise the process as ours.
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if Path(f"/proc/{process.pid}/environ").read_bytes():
                return
        except OSError:
            return
        time.sleep(0.01)


def stop(name: str, timeout: float = 20) -> bool:
    """Stop our process `name` (its whole process group); True if one was running."""
    pid = running_pid(name)
    if pid is None:
        pid_file(name).unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running_pid(name) is not None:
        time.sleep(0.2)
    if running_pid(name) is not None:
        os.killpg(pid, signal.SIGKILL)
    pid_file(name).unlink(missing_ok=True)
    return True


def wait_until(
    name: str,
    check,
    timeout: float,
    what: str,
) -> None:
    """Poll `check()` until it is true; fail with a pointer to the log if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if running_pid(name) is None:
            raise DevstackError(f"{name} exited while starting; see {log_file(name)} ({tail(name)})")
        time.sleep(0.5)
    raise DevstackError(f"{name} was not {what} after {timeout:.0f}s; see {log_file(name)}")


def tail(name: str, lines: int = 1) -> str:
    try:
        text = log_file(name).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:])[-300:]


def http_ok(url: str, context: ssl.SSLContext | None = None, headers: dict | None = None) -> bool:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=3, context=context) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False
