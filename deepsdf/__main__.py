"""``python -m deepsdf`` runs the command-line tool."""

from deepsdf.cli import main

raise SystemExit(main())
