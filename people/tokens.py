"""API tokens: `pt_` and 32 random bytes, shown once, stored as their SHA-256.

A secret with 256 bits of entropy needs no salt or slow hash: nobody can guess one, so the
SHA-256 is enough to keep the database from holding usable tokens.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "pt_"


def generate_token() -> str:
    """A new API token: `pt_` and 32 random bytes, URL-safe base64 (shown once)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
