"""``python -m streams.cli`` runs the ``shadow-eval`` command line."""

from streams.cli import main

main()
