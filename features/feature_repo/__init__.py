"""GemiRec's Feast feature repo: declarations only (definitions.py). All reads and writes go through
features/store.py, which generates a run-specific feature_store.yaml next to the data it points at."""
