"""``python -m lrkit`` runs the command line."""

from .cli import main

main()
