"""Encrypts secrets stored in the database (kubeconfigs, generated passwords) with rotating Fernet keys."""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@cache
def _fernet() -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in settings.FIELD_ENCRYPTION_KEYS])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"FIELD_ENCRYPTION_KEYS holds a key that is not a Fernet key: {exc}") from None


def encrypt(plaintext: str) -> str:
    """Encrypt with the newest key (the first in FIELD_ENCRYPTION_KEYS)."""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt with whichever configured key encrypted it; a lost key is a configuration error."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with FIELD_ENCRYPTION_KEYS: was an old key removed too early?"
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt a stored value with the newest key (for `manage.py rotate_secrets`)."""
    return _fernet().rotate(token.encode()).decode()
