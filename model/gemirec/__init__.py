"""GemiRec as the paper lays it out (Wu et al., arXiv 2510.14626): three modules and their assembly.

- `idmm.py`  IDMM, the Interest Dictionary Maintenance Module: a shared residual-quantized interest
  dictionary (RQ-VAE over item embeddings); every item gets a discrete interest code.
- `mipdm.py` MIPDM, the Multi-Interest Posterior Distribution Module: a generative model of the user's
  future interests over that dictionary (beam search returns the top-K distinct codes).
- `mirm.py`  MIRM, the Multi-Interest Retrieval Module: one interest-conditioned query per generated
  interest, FAISS search, and the merge of the K lists.
- `gemirec.py` assembles them on the dual-tower backbone (`model/baselines/towers.py`) with the training
  schedule (warm-up, k-means, joint stage).

Around them: `selection.py` (inference settings chosen on validation users), `history_interests.py`
(the interests present in a history), `diagnostics.py` (per-epoch top-K hit rate, oracle, code churn),
`attribution.py` and `explain.py` (which interest an item came from, readable interest labels).
"""
