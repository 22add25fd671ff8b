"""Which histories the monitor's reference is computed on (monitoring.reference.reference_histories)."""

from model.config import load_config
from model.sequences import SequenceData
from monitoring.reference import reference_histories
from tests.model.conftest import make_events


def test_every_validation_user_then_training_users_up_to_the_cap():
    events, items = make_events(n_users=200, n_items=40)
    cfg = load_config("tiny").data
    data = SequenceData.from_frames(events, items, cfg)
    n_val, n_train = len(data.users_of(1)), len(data.users_of(0))
    assert n_val > 0 and n_train > n_val

    capped = reference_histories(events, items, cfg, max_users=n_val + 10)
    assert len(capped) == n_val + 10
    validation = [data.item_ids[h].tolist() for h in data.eval_set(1).full_histories]
    assert capped[:n_val] == validation  # held-out users first, cut as the evaluation protocol cuts them

    everyone = reference_histories(events, items, cfg, max_users=10_000)
    assert len(everyone) == n_val + n_train
    # a training user's history is its latest items, in source ids, at most maxlen of them
    latest = everyone[n_val]
    user = data.users_of(0)[0]
    assert latest == data.item_ids[data.sequence(int(user))[-cfg.maxlen:]].tolist()
    assert all(0 < len(h) <= cfg.maxlen for h in everyone[n_val:])
    # the sample is seeded: the same call gives the same reference
    assert reference_histories(events, items, cfg, max_users=n_val + 10) == capped
