"""asv benchmarks of touchstone's backends (see benchmarks/README.md)."""
