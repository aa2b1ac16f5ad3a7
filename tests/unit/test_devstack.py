"""The local stack fails with one clear line for a missing JDK or Go, or a port someone else holds."""

import socket

import pytest

from devstack import __main__ as cli
from devstack import config, procs, stack, tools
from devstack.procs import DevstackError


def fake_jdk(root, name: str, version: str):
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\n")
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


def test_java_home_honours_a_new_enough_java_home(tmp_path, monkeypatch):
    home = fake_jdk(tmp_path, "my-jdk", "25.0.3")
    monkeypatch.setenv("JAVA_HOME", str(home))
    assert tools.java_home() == home


def test_java_home_skips_too_old_java_home_and_finds_a_newer_jdk(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path, "old", "17.0.15")))
    jvm = tmp_path / "jvm"
    newer = fake_jdk(jvm, "temurin-25", "25.0.3")
    fake_jdk(jvm, "openjdk-17", "17.0.15")
    assert tools.java_home(jvm) == newer


def test_no_suitable_jdk_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path, "old", "1.8.0_402")))
    with pytest.raises(DevstackError, match="needs Java 21 or newer"):
        tools.java_home(tmp_path / "no-jvm")


def test_missing_go_is_one_clear_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(tools.shutil, "which", lambda name: None)
    monkeypatch.setattr(config, "BIN_DIR", tmp_path)
    monkeypatch.setattr(stack, "up", lambda: tools.helm())
    assert cli.main(["up"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["devstack: Go is not installed or not on PATH: install Go 1.24 or newer, then run again."]


def test_port_held_by_another_program_is_one_clear_line(monkeypatch):
    with socket.socket() as other:
        other.bind((config.HOST, 0))
        other.listen()
        port = other.getsockname()[1]
        monkeypatch.setattr(procs, "running_pid", lambda name: None)
        with pytest.raises(DevstackError, match=f"port {port} .* is in use by another program"):
            procs.check_port_free("keycloak", port)


def test_stopping_what_is_not_running_is_harmless(monkeypatch, tmp_path):
    monkeypatch.setattr(procs, "PID_DIR", tmp_path)
    assert procs.stop("etcd") is False


def test_a_recycled_pid_is_not_taken_for_ours(monkeypatch, tmp_path):
    import os

    monkeypatch.setattr(procs, "PID_DIR", tmp_path)
    (tmp_path / "etcd.pid").write_text(str(os.getpid()))  # alive, but not started by devstack
    assert procs.running_pid("etcd") is None
