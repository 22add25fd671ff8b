"""Canonical interaction data: readers for real datasets, the simulator, and the ingest CLI."""
