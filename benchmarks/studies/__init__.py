"""One-off studies: each answered one question; their tables live in benchmarks/results/ (see docs/results.md)."""
