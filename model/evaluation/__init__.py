"""Evaluation over the full catalogue (DESIGN §3): `evaluate.py` runs a model on held-out users through
the FAISS index, `metrics.py` holds Recall/HitRate/NDCG@N, diversity, collapse and novelty."""
