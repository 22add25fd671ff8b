"""A saved model is a self-describing, checksummed folder (`saved.py`: save, verify, load)."""
