"""A resumed checkpoint is read with torch.load(weights_only=True): tensors and plain values only, so a
pickled object planted in runs_dir (a deployment parameter) is never run."""

import torch

from model.config import replace
from model.training.train import fit, make_model, seed_everything


class Planted:
    """What a hostile checkpoint could hold: unpickling it would call os.system."""

    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/gemirec-planted-checkpoint-ran",))


def test_the_checkpoint_holds_only_tensors_and_plain_values(tmp_path, tiny_data, tiny_cfg):
    cfg = replace(tiny_cfg, model="single", train={"max_epochs": 1})
    seed_everything(0)
    fit(make_model(cfg, tiny_data), tiny_data, cfg, checkpoint_dir=tmp_path, progress=False)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # raises on any pickled object
    assert saved["state"]["epoch"] == 1 and saved["rng"]["bit_generator"] == "PCG64"


def test_a_planted_object_is_not_run_and_training_starts_afresh(tmp_path, tiny_data, tiny_cfg):
    marker = "/tmp/gemirec-planted-checkpoint-ran"
    import os

    if os.path.exists(marker):
        os.unlink(marker)
    torch.save({"model": {}, "state": Planted()}, tmp_path / "checkpoint.pt")
    cfg = replace(tiny_cfg, model="single", train={"max_epochs": 1})
    seed_everything(0)
    result = fit(make_model(cfg, tiny_data), tiny_data, cfg, checkpoint_dir=tmp_path, progress=False)
    assert not os.path.exists(marker)
    assert result.epochs_run == 1 and result.history[0]["epoch"] == 0  # from scratch
