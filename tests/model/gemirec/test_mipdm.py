import torch

from model.baselines.towers import CausalEncoder, causal_mask
from model.gemirec.mipdm import InterestGenerator


def test_causal_encoder_leaks_no_future_position():
    torch.manual_seed(0)
    enc = CausalEncoder(dim=16, n_layers=2, n_heads=2, dropout=0.0, maxlen=10).eval()
    ids = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8, 9, 2]])
    x = torch.randn(1, 10, 16)
    base = enc(x, ids)
    x2 = x.clone()
    x2[:, 6:] = torch.randn(1, 4, 16)  # change the future of position 5
    out = enc(x2, ids)
    assert torch.allclose(base[:, :6], out[:, :6], atol=1e-5)
    assert not torch.allclose(base[:, 6:], out[:, 6:])


def test_padding_is_invisible_and_mask_has_no_empty_rows():
    ids = torch.tensor([[0, 0, 5, 6]])
    m = causal_mask(ids)[0, 0]
    assert m.any(1).all()
    assert not m[2:, :2].any()  # real positions never attend to padding


def test_beam_search_returns_distinct_codes_sorted_by_probability():
    torch.manual_seed(0)
    gen = InterestGenerator(dim=16, n_levels=2, codebook_size=5, interest_dim=8, n_layers=1, n_heads=2,
                            dropout=0.0, maxlen=6).eval()
    g = torch.randn(7, 16)
    codes, logp = gen.beam_search(g, k=6, beam=25)  # beam 25 = exhaustive over 5 × 5
    assert codes.shape == (7, 6, 2)
    for row in range(7):
        tuples = {tuple(c) for c in codes[row].tolist()}
        assert len(tuples) == 6
        assert (logp[row][:-1] >= logp[row][1:]).all()
        # scores are the exact joint log-probabilities of the returned tuples
        assert torch.allclose(gen.log_prob(g[row:row + 1].expand(6, -1), codes[row]), logp[row], atol=1e-5)
    # exhaustive beam = exact top-6 of all 25 tuples
    all_codes = torch.cartesian_prod(torch.arange(5), torch.arange(5))
    full = gen.log_prob(g[0:1].expand(25, -1), all_codes)
    assert torch.allclose(full.topk(6).values, logp[0], atol=1e-5)


def test_single_level_beam_is_top_k():
    torch.manual_seed(0)
    gen = InterestGenerator(16, 1, 9, 8, 1, 2, 0.0, 6).eval()
    g = torch.randn(3, 16)
    codes, logp = gen.beam_search(g, k=4)
    probs = torch.log_softmax(gen.level_logits(g, torch.zeros(3, 0, dtype=torch.long), 0), -1)
    assert torch.equal(codes[:, :, 0], probs.topk(4).indices)


def test_window_log_prob_matches_log_prob_column_by_column():
    torch.manual_seed(0)
    gen = InterestGenerator(16, 2, 5, 8, 1, 2, 0.0, 6).eval()
    g = torch.randn(7, 16)
    codes = torch.randint(0, 5, (7, 3, 2))  # three targets per state
    batched = gen.window_log_prob(g, codes)
    assert batched.shape == (7, 3)
    for w in range(3):
        assert torch.allclose(batched[:, w], gen.log_prob(g, codes[:, w]), atol=1e-6)
