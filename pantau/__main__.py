"""`python -m pantau` runs the `pantau` command."""

from pantau.cli import main

main()
