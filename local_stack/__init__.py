"""Framework-free helpers for the local stack's background servers (Prefect, bentoml serve, evidently ui)."""
