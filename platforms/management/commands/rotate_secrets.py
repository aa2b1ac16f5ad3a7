"""Re-encrypts every stored secret with the newest key in FIELD_ENCRYPTION_KEYS (key rotation)."""

from django.core.management.base import BaseCommand
from django.db import transaction

from platforms import crypto
from platforms.models import Cluster, Platform


class Command(BaseCommand):
    help = (
        "Re-encrypt stored kubeconfigs and platform secrets with the first key of FIELD_ENCRYPTION_KEYS. "
        "Rotate by putting a new key first, running this, then removing the old key."
    )

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        clusters = 0
        for cluster in Cluster.objects.select_for_update():
            cluster.kubeconfig_encrypted = crypto.rotate(cluster.kubeconfig_encrypted)
            cluster.save(update_fields=["kubeconfig_encrypted"])
            clusters += 1
        platforms = 0
        for platform in Platform.objects.select_for_update().exclude(secrets_encrypted=""):
            platform.secrets_encrypted = crypto.rotate(platform.secrets_encrypted)
            platform.save(update_fields=["secrets_encrypted"])
            platforms += 1
        self.stdout.write(f"Re-encrypted {clusters} cluster kubeconfig(s) and {platforms} platform secret set(s).")
