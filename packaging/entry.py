"""The single-file build's entry point (packaging/dist.py freezes this)."""

from jobrunner.cli.main import main

raise SystemExit(main())
