"""Text rules every wire shape shares: free text never carries control characters.

Names, sites, districts, labels and notes end up in InfluxDB tags, broker files, CSV and log
lines, where a newline or NUL would split or corrupt a record. `Text100` / `Text200` are
pydantic types with the rule and a length cap.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(value: str) -> str:
    """`value` unchanged, or ValueError when it holds a control character."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (newlines, tabs, NUL)")
    return value


Text200 = Annotated[str, StringConstraints(max_length=200), AfterValidator(printable)]
Text100 = Annotated[str, StringConstraints(max_length=100), AfterValidator(printable)]
