"""TOTP secrets sealed at rest (``users.totp_secret``): AES-GCM (cryptography) under a key
derived by HKDF from ``ODD17_SECRET_KEY``, with the account's address as associated data (a
sealed secret copied to another account does not open). Reading the database, or a backup,
gives no secret that generates codes.

A pyotp secret is 20 bytes (32 base32 characters); sealed it is nonce (12) + ciphertext (20)
+ tag (16) = 48 bytes, 64 URL-safe base64 characters: it fits the column as it is. A value of
another length is a secret stored in clear before sealing existed: still accepted, and sealed
at its next successful use. Changing ``ODD17_SECRET_KEY`` makes sealed secrets unreadable:
each staff member is then enrolled again (``odd17 users totp``)."""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from models import DomainError

SEALED_LENGTH = 64
NO_KEY = ("ODD17_SECRET_KEY n'est pas défini : il chiffre les secrets TOTP en base. "
          "Définissez-le (au moins 32 caractères, le même pour le portail et la ligne de "
          "commande) puis recommencez.")
UNREADABLE = ("Le secret TOTP de ce compte ne se lit pas avec la clé ODD17_SECRET_KEY "
              "actuelle (la clé a changé ?) : demandez à un administrateur de le recréer "
              "(odd17 users totp).")


def _cipher(key: str | None) -> AESGCM:
    if not key:
        raise DomainError(NO_KEY)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"odd17 totp secrets").derive(key.encode("utf-8"))
    return AESGCM(derived)


def is_sealed(stored: str) -> bool:
    return len(stored) == SEALED_LENGTH


def seal(secret: str, email: str, key: str | None) -> str:
    nonce = os.urandom(12)
    sealed = nonce + _cipher(key).encrypt(nonce, base64.b32decode(secret), email.encode())
    return base64.urlsafe_b64encode(sealed).decode("ascii")


def unseal(stored: str, email: str, key: str | None) -> str:
    """The base32 secret of a stored value (sealed, or in clear from before)."""
    if not is_sealed(stored):
        return stored
    cipher = _cipher(key)
    try:
        data = base64.urlsafe_b64decode(stored)
        raw = cipher.decrypt(data[:12], data[12:], email.encode())
    except (InvalidTag, binascii.Error, ValueError):
        raise DomainError(UNREADABLE) from None
    return base64.b32encode(raw).decode("ascii")
