"""``python -m alopex`` runs the command line."""

from alopex.cli import main

main()
