"""The journal contract suite: one set of tests, run against every JournalStore."""
