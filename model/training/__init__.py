"""Training: the one loop every model uses (`train.py`: `fit`, `make_model`), the end-to-end pipeline
data → fit → index → evaluate → save (`pipeline.py`), and PyTorch DDP for `torchrun`
(`distributed.py`, entry point `python -m model.training.distributed_train`)."""
