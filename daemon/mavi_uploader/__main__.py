"""`python -m mavi_uploader` runs the same command line as the `mavi-uploader` script."""

from mavi_uploader.cli.main import main

raise SystemExit(main())
