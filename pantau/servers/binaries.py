"""Find the Debian-packaged server binaries (they live in /usr/sbin, often off a user's PATH)."""

from __future__ import annotations

import shutil


class MissingBinaryError(RuntimeError):
    pass


def find_binary(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        raise MissingBinaryError(
            f"{name} not found: install Debian's `{package}` package (`make deps` does it)"
        )
    return path
