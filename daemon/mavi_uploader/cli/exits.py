"""The contract's exit codes, apart from everything else so `main` can name them for free."""

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
