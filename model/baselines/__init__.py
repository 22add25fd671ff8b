"""The models GemiRec is compared with, trained in the same harness (DESIGN §3).

- `towers.py`: the dual-tower backbone (item tower, causal user tower). Alone it is the single-vector
  baseline (SASRec-style); YouTubeDNN (mean pooling) lives beside it. GemiRec builds on this backbone.
- `multi_interest.py`: MIND (capsule routing), ComiRec-SA (self-attention), ComiRec-DR (dynamic routing).
MostPopular is in `model/retriever.py`, beside the interface every model implements.
"""
