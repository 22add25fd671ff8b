"""Which query each merged item came from (model/gemirec/attribution.py), on an untrained GemiRec: the properties
hold for any weights."""

import numpy as np
import pytest
import torch

from model.config import load_config
from model.faiss_index import ItemIndex
from model.gemirec.attribution import U_QUERY, attribute
from model.training.train import build_from_catalogue

N_ITEMS = 300


def joint_model(merge: str, restrict: bool):
    cfg = load_config("tiny", ["model=gemirec", f"gemirec.merge={merge}",
                               f"gemirec.restrict_family={str(restrict).lower()}"])
    torch.manual_seed(0)
    model = build_from_catalogue(cfg, N_ITEMS, np.zeros((N_ITEMS + 1, 1), dtype=np.int64), 0)
    model.stage.fill_(1)  # past warm-up: the interest path runs
    model.item_codes[1:] = torch.randint(0, cfg.gemirec.codebook_size, (N_ITEMS, cfg.gemirec.n_levels))
    model.eval()
    return model, cfg


@pytest.mark.parametrize("merge,restrict", [("mixture", False), ("mixture", True), ("quota", True),
                                            ("max", False)])
def test_every_item_is_traced_to_a_query_that_could_have_retrieved_it(merge, restrict):
    model, cfg = joint_model(merge, restrict)
    matrix = model.item_matrix()
    histories = np.random.default_rng(0).integers(1, N_ITEMS + 1, size=(6, cfg.data.maxlen))
    rec = model.recommend(histories, ItemIndex.build(matrix), 20, k=3)
    via, score = attribute(rec, matrix, rec.ranked, cfg, model.item_codes.numpy())
    assert via.shape == rec.ranked.shape and set(np.unique(via)) <= {U_QUERY, 0, 1, 2}
    assert np.isfinite(score[rec.ranked >= 0]).all()
    if merge == "mixture":  # the score is the mixture probability the list is ranked by
        assert (np.diff(score, axis=1) <= 1e-9).all()
    if merge == "max":  # max merges the interests only, never u
        assert (via >= 0).all()
    if restrict:  # interest k retrieves only its own code family
        family = model.item_codes.numpy()[rec.ranked, 0]
        mine = via >= 0
        interest_family = np.take_along_axis(rec.interest_codes[:, :, 0], np.maximum(via, 0), 1)
        assert (family[mine] == interest_family[mine]).all()
