"""`python -m devstack zenith` marks a platform's Reservations Ready under the local base domain, as Zenith would."""

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from devstack import __main__ as cli
from devstack import config, zenith
from devstack.procs import DevstackError
from devstack.zenith_proxy import ZenithProxy
from platforms.service_addresses import check_host


def reservation(platform: str, service: str, status: dict | None = None, deleting: bool = False) -> dict:
    meta = {"name": service, "namespace": platform, "labels": {zenith.SERVICE_LABEL: service}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, **({"status": status} if status is not None else {})}


class FakeCustomObjects:
    """The two list calls and the status patch of kubernetes.client.CustomObjectsApi, over a list."""

    def __init__(self, reservations: list[dict]):
        self.reservations = reservations
        self.lists: list[tuple] = []
        self.patches: list[tuple] = []

    def list_namespaced_custom_object(self, group, version, namespace, plural, label_selector, _request_timeout):
        self.lists.append((group, version, namespace, plural, label_selector))
        return {"items": [r for r in self.reservations if r["metadata"]["namespace"] == namespace]}

    def list_cluster_custom_object(self, group, version, plural, label_selector, _request_timeout):
        self.lists.append((group, version, None, plural, label_selector))
        return {"items": self.reservations}

    def patch_namespaced_custom_object_status(self, group, version, namespace, plural, name, body, _request_timeout):
        self.patches.append((group, version, namespace, plural, name, body))
        for found in self.reservations:
            if (found["metadata"]["namespace"], found["metadata"]["name"]) == (namespace, name):
                found["status"] = body["status"]


def test_ready_status_is_what_the_operator_writes_under_the_local_base_domain():
    assert zenith.ready_status("jupyterhub", "demo") == {
        "status": {"phase": "Ready", "subdomain": "jupyterhub-demo", "fqdn": "jupyterhub-demo.zenith.localhost"}
    }


def test_the_demo_addresses_stay_on_this_machine_and_the_console_accepts_them():
    fqdn = zenith.ready_status("binderhub", "a-long-platform-name")["status"]["fqdn"]
    assert fqdn.endswith(".localhost")  # RFC 6761: never looked up beyond this machine
    assert check_host(fqdn) == fqdn
    assert check_host(fqdn, base_domain=config.ZENITH_BASE_DOMAIN) == fqdn


def test_expose_marks_each_reservation_of_the_platform_ready_by_its_service_label():
    api = FakeCustomObjects(
        [reservation("demo", "binderhub"), reservation("demo", "jupyterhub"), reservation("other", "jupyterhub")]
    )
    exposed = zenith.expose(api, "demo")
    assert api.lists == [("zenith.stackhpc.com", "v1alpha1", "demo", "reservations", "binderadmin.io/service")]
    assert [(p[2], p[4], p[5]["status"]["fqdn"]) for p in api.patches] == [
        ("demo", "binderhub", "binderhub-demo.zenith.localhost"),
        ("demo", "jupyterhub", "jupyterhub-demo.zenith.localhost"),
    ]
    assert [str(item) for item in exposed] == [
        "demo/binderhub marked Ready: binderhub-demo.zenith.localhost",
        "demo/jupyterhub marked Ready: jupyterhub-demo.zenith.localhost",
    ]


def test_expose_leaves_ready_and_deleted_reservations_alone():
    ready = {"phase": "Ready", "subdomain": "abc", "fqdn": "abc.zenith.localhost"}
    api = FakeCustomObjects(
        [
            reservation("demo", "binderhub", status=ready),
            reservation("demo", "jupyterhub", deleting=True),
            reservation("demo2", "jupyterhub", status={"phase": "Pending"}),
        ]
    )
    exposed = zenith.expose(api)
    assert api.lists[0][2] is None  # every platform
    assert [p[2:5] for p in api.patches] == [("demo2", "reservations", "jupyterhub")]
    assert [(item.platform, item.fqdn, item.marked) for item in exposed] == [
        ("demo", "abc.zenith.localhost", False),
        ("demo2", "jupyterhub-demo2.zenith.localhost", True),
    ]


def test_the_kubernetes_api_refusing_is_one_clear_line():
    class Refusing(FakeCustomObjects):
        def list_namespaced_custom_object(self, *args, **kwargs):
            raise ApiException(status=404, reason="Not Found")

    with pytest.raises(DevstackError, match="refused to list or mark Reservations: 404 Not Found"):
        zenith.expose_locally(Refusing([]), "demo")


def test_a_stack_that_is_down_is_one_clear_line():
    class Down(FakeCustomObjects):
        def list_cluster_custom_object(self, *args, **kwargs):
            raise urllib3.exceptions.MaxRetryError(None, "/apis", "Connection refused")

    with pytest.raises(DevstackError, match=r"not answering .* is the stack up\?"):
        zenith.expose_locally(Down([]), None)


def test_command_without_a_kubeconfig_says_to_bring_the_stack_up(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(config, "KUBECONFIG", tmp_path / "kubeconfig")
    assert cli.main(["zenith", "demo"]) == 1
    assert "bring the local stack up first" in capsys.readouterr().err


def test_command_prints_each_address_or_what_to_do_when_there_is_none(monkeypatch, capsys):
    api = FakeCustomObjects([reservation("demo", "jupyterhub")])
    monkeypatch.setattr(zenith, "local_api", lambda: api)
    assert cli.main(["zenith", "demo"]) == 0
    assert capsys.readouterr().out == "devstack: demo/jupyterhub marked Ready: jupyterhub-demo.zenith.localhost\n"
    assert cli.main(["zenith", "nothing-here"]) == 0
    assert "no Reservations found for platform nothing-here" in capsys.readouterr().out


def test_watch_reports_only_newly_marked_reservations_and_keeps_going_after_an_outage(monkeypatch):
    api = FakeCustomObjects([reservation("demo", "binderhub")])
    outcomes = [None, DevstackError("the local Kubernetes API is not answering"), None, KeyboardInterrupt()]

    def expose_or_fail(api, platform):
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return zenith.expose(api, platform)

    monkeypatch.setattr(zenith, "expose_locally", expose_or_fail)
    monkeypatch.setattr(zenith.time, "sleep", lambda seconds: None)
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        zenith.watch(api, None, lines.append)
    assert lines == [
        "demo/binderhub marked Ready: binderhub-demo.zenith.localhost",
        "the local Kubernetes API is not answering (trying again)",
    ]
    assert len(api.patches) == 1  # Ready after the first round, so left alone in the third


def test_the_watch_gives_its_proxy_the_names_it_wrote_and_says_where_they_are_served(monkeypatch):
    elsewhere = {"phase": "Ready", "subdomain": "x", "fqdn": "x.example.org"}
    api = FakeCustomObjects([reservation("demo", "jupyterhub"), reservation("demo", "binderhub", status=elsewhere)])
    proxy = ZenithProxy(lambda namespace, name: ("10.0.0.1", 80), port=18082)
    rounds = iter([None, KeyboardInterrupt()])

    def sleep(seconds):
        if stop := next(rounds):
            raise stop

    monkeypatch.setattr(zenith.time, "sleep", sleep)
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        zenith.watch(api, "demo", lines.append, proxy=proxy)
    assert proxy.routes == {"jupyterhub-demo.zenith.localhost": ("demo", "jupyterhub")}
    assert lines == [
        "demo/jupyterhub marked Ready: jupyterhub-demo.zenith.localhost, "
        "served at http://jupyterhub-demo.zenith.localhost:18082"
    ]


def test_make_runs_console_links_to_the_proxy(monkeypatch, capsys):
    monkeypatch.setattr(cli.stack, "console_env", lambda: {"HELM_EXECUTABLE": "helm"})
    assert cli.main(["env"]) == 0
    exports = capsys.readouterr().out.splitlines()
    assert "export ZENITH_LINK_SCHEME='http'" in exports
    assert f"export ZENITH_LINK_PORT='{config.PORTS.zenith_proxy}'" in exports
