"""The test doubles keep the adapters' promises: each fake has every Protocol method, with its parameters."""

import inspect

import pytest

from platforms.services import helm, jupyterhub, keycloak, kube, oidc
from platforms.services.interfaces import Directory, Helm, HubReader, Kube, SessionRefresher
from tests.fakes import FakeDeployKube, FakeDirectory, FakeHelm, FakeHubReader, FakeKube

REAL = [
    (Helm, helm.HelmService),
    (Kube, kube.KubeService),
    (Directory, keycloak.GroupDirectory),
    (HubReader, jupyterhub.HubUsageReader),
    (SessionRefresher, oidc.SessionChecker),
]
FAKES = [(Helm, FakeHelm), (Kube, FakeDeployKube), (Directory, FakeDirectory), (HubReader, FakeHubReader)]


def promised(protocol: type) -> list[str]:
    return [name for name, value in vars(protocol).items() if inspect.isfunction(value) and not name.startswith("_")]


def parameters(function) -> list[tuple]:
    """Names, kinds, defaults and annotations: what a caller relies on."""
    return [(p.name, p.kind, p.default, p.annotation) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize(("protocol", "cls"), REAL + FAKES, ids=lambda value: value.__name__)
def test_implementation_has_every_promised_method_with_its_parameters(protocol, cls):
    for name in promised(protocol):
        # Defined by the class itself (or a base of its own), not the Protocol's empty body inherited.
        owner = next(base for base in cls.__mro__ if name in vars(base))
        assert owner is not protocol, f"{cls.__name__} lacks {protocol.__name__}.{name}"
        assert parameters(getattr(cls, name)) == parameters(getattr(protocol, name)), f"{cls.__name__}.{name}"


def test_the_fakes_declare_what_they_implement():
    for protocol, fake in FAKES:
        assert protocol in fake.__mro__, fake.__name__


def test_the_partial_fake_kube_agrees_where_it_answers():
    for name in ("server_version", "capacity"):
        assert parameters(getattr(FakeKube, name)) == parameters(getattr(Kube, name))


def test_a_drifted_fake_is_caught():
    class Drifted(FakeHelm):
        def release(self, name: str, cluster=None):
            return None

    with pytest.raises(AssertionError, match="Drifted.release"):
        test_implementation_has_every_promised_method_with_its_parameters(Helm, Drifted)


def test_a_fake_missing_a_method_is_caught():
    class Partial(Helm):
        pass

    with pytest.raises(AssertionError, match="lacks"):
        test_implementation_has_every_promised_method_with_its_parameters(Helm, Partial)
