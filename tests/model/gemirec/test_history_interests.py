import numpy as np
import torch

from model.gemirec.history_interests import flat_codes, history_interests, history_share

# items 1..4 with C = 2 levels of M = 4 codes; row 0 is padding
ITEM_CODES = torch.tensor([[0, 0], [1, 2], [1, 3], [2, 0], [1, 2]])


def test_flat_codes_number_each_path_alike_in_numpy_and_torch():
    codes = ITEM_CODES[1:]
    assert flat_codes(codes, 4).tolist() == [6, 7, 8, 6]  # 1*4+2, 1*4+3, 2*4+0, 1*4+2
    np.testing.assert_array_equal(flat_codes(codes.numpy(), 4), flat_codes(codes, 4).numpy())


def test_history_interests_are_the_most_frequent_paths_weighted_by_count():
    ids = torch.tensor([[0, 0, 1, 4, 1, 3, 2], [0, 0, 0, 0, 0, 3, 3]])  # left padding is not counted
    codes, probs = history_interests(ITEM_CODES, ids, m=4, k=2)
    assert codes[0, 0].tolist() == [1, 2]  # items 1 and 4 share the path (1, 2): 3 of 5 positions
    assert codes[0, 1].tolist() in ([1, 3], [2, 0])  # one each: a tie
    assert probs[0, 0] > probs[0, 1] and torch.allclose(probs.sum(1), torch.ones(2))
    assert codes[1, 0].tolist() == [2, 0] and probs[1, 0] > 0.99  # one path only; the rest is smoothing


def test_history_share_is_the_log_share_of_each_interests_family():
    ids = torch.tensor([[0, 1, 2, 3, 4]])  # families (level 1): 1, 1, 2, 1
    codes = torch.tensor([[[1, 0], [2, 3]]])
    share = history_share(ITEM_CODES, ids, codes, m=4).exp()
    assert torch.allclose(share, torch.tensor([[0.75, 0.25]]), atol=1e-3)
