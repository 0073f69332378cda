"""`python -m stack` runs the `pantau` command (what the launcher and tests spawn)."""

from stack.cli import main

main()
