"""Stored secrets are encrypted, and survive a key rotation done as documented."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from platforms import crypto
from platforms.models import Cluster


@pytest.fixture
def keys(settings):
    def use(*names):
        settings.FIELD_ENCRYPTION_KEYS = list(names)
        crypto._fernet.cache_clear()

    yield use
    crypto._fernet.cache_clear()


def test_rotation_keeps_secrets_readable_and_drops_the_old_key(db, keys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    keys(old)
    cluster = Cluster(name="c")
    cluster.kubeconfig = "token: abc"
    cluster.save()

    keys(new, old)  # step 1: new key first, old key still accepted
    assert Cluster.objects.get().kubeconfig == "token: abc"
    call_command("rotate_secrets")  # step 2: re-encrypt everything with the new key

    keys(new)  # step 3: the old key is gone
    assert Cluster.objects.get().kubeconfig == "token: abc"


def test_a_removed_key_is_a_clear_configuration_error(db, keys):
    keys(Fernet.generate_key().decode())
    token = crypto.encrypt("secret")
    keys(Fernet.generate_key().decode())
    with pytest.raises(ImproperlyConfigured, match="old key removed too early"):
        crypto.decrypt(token)
