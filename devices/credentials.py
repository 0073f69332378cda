"""Device secrets: MQTT passwords in Mosquitto's own hash format.

A device password is generated here, shown once, and stored only as Mosquitto 2.0's `$7$`
hash (PBKDF2-HMAC-SHA512, 101 iterations, 12-byte random salt — what `mosquitto_passwd`
writes). That hash is a salted, one-way hash, so it is also our at-rest hash: the broker's
`password_file` is rendered from the registry without the plaintext ever being stored.
(101 iterations is Mosquitto's choice, not a strong one; the passwords it protects are 24
random characters, not human ones, so brute force over the hash is not the threat.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

MOSQUITTO_ITERATIONS = 101
MOSQUITTO_SALT_BYTES = 12
MOSQUITTO_HASH_BYTES = 64
PASSWORD_CHARS = 24


def generate_password() -> str:
    """A random device password: URL-safe, 24 characters (144 bits)."""
    return secrets.token_urlsafe(18)[:PASSWORD_CHARS]


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """`$7$101$<salt b64>$<hash b64>`, the line format of Mosquitto 2.0's password_file."""
    salt = salt if salt is not None else secrets.token_bytes(MOSQUITTO_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac(
        "sha512", password.encode("utf-8"), salt, MOSQUITTO_ITERATIONS, MOSQUITTO_HASH_BYTES
    )
    return (
        f"$7${MOSQUITTO_ITERATIONS}$"
        f"{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    )


def verify_mosquitto_hash(password: str, stored: str) -> bool:
    """True when `password` matches a `$7$` hash (as Mosquitto checks it)."""
    try:
        _, kind, iterations, salt_b64, hash_b64 = stored.split("$")
        if kind != "7":
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(hash_b64, validate=True)
        digest = hashlib.pbkdf2_hmac(
            "sha512", password.encode("utf-8"), salt, int(iterations), len(expected)
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest, expected)
