from jobrunner.cli.main import main

raise SystemExit(main())
