"""`python -m mavi_uploader` runs the same command line as the `mavi-uploader` script."""

from mavi_uploader.cli import main

raise SystemExit(main())
