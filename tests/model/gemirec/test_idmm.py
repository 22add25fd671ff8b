import numpy as np
import torch

from model.gemirec.idmm import InterestDictionary, code_stats


def test_quantize_concatenates_codewords_and_residuals_follow_the_paper():
    torch.manual_seed(0)
    d = InterestDictionary(dim=16, n_levels=3, codebook_size=8, code_dim=4)
    v = torch.randn(50, 16)
    q = d(v)
    assert q.codes.shape == (50, 3) and q.embedding.shape == (50, 12)
    # e_m is the concatenation of E_c[m_c], and embed() reproduces it from the codes alone
    expected = torch.cat([d.codebooks[c][q.codes[:, c]] for c in range(3)], dim=1)
    assert torch.allclose(q.embedding, expected)
    assert torch.allclose(d.embed(q.codes), expected)
    # r_{c+1} = r_c − E_c[m_c], and m_c is the nearest codeword of r_c
    for c in range(3):
        dist = torch.cdist(q.residuals[c], d.codebooks[c])
        assert (dist.argmin(1) == q.codes[:, c]).all()
        if c < 2:
            step = q.residuals[c] - d.codebooks[c][q.codes[:, c]]
            assert torch.allclose(q.residuals[c + 1], step, atol=1e-6)


def test_dictionary_loss_never_reaches_item_embeddings():
    d = InterestDictionary(dim=8, n_levels=2, codebook_size=4, code_dim=4)
    v = torch.randn(20, 8, requires_grad=True)
    d(v).loss.backward()
    assert v.grad is None  # stop-gradient on the item embedding
    assert d.encoder[0].weight.grad is not None  # straight-through reaches z_enc
    assert d.codebooks.grad is not None


def test_kmeans_init_then_decode_reconstructs_better_than_random():
    torch.manual_seed(0)
    centers = torch.randn(6, 16) * 3
    v = centers[torch.randint(0, 6, (600,))] + 0.05 * torch.randn(600, 16)
    d = InterestDictionary(dim=16, n_levels=1, codebook_size=6, code_dim=8)
    opt = torch.optim.Adam(d.parameters(), lr=3e-3)
    d.kmeans_init(v)
    for _ in range(300):
        loss = d(v).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    codes = d.assign(v).numpy()
    stats = code_stats(codes, 6)
    assert stats["dead_share"][0] == 0.0
    assert stats["perplexity"][0] > 4.0  # 6 balanced clusters -> close to 6
    recon = d.decoder(d.embed(d.assign(v)))
    assert torch.mean((recon - v) ** 2) < 0.5 * torch.var(v)


def test_rare_codes_are_restarted_on_live_residuals():
    torch.manual_seed(0)
    d = InterestDictionary(dim=8, n_levels=1, codebook_size=8, code_dim=4)
    d.codebooks.data[0, 1:] = 100.0  # every item lands on code 0
    v = torch.randn(64, 8)
    assert code_stats(d.assign(v).numpy(), 8)["dead_share"][0] == 7 / 8
    n = d.restart_rare_codes(v, torch.Generator().manual_seed(0))
    assert n == 7
    assert code_stats(d.assign(v).numpy(), 8)["dead_share"][0] < 7 / 8


def test_code_stats_by_hand():
    s = code_stats(np.array([[0], [0], [1], [1]]), 4)
    assert np.isclose(s["perplexity"][0], 2.0) and s["dead_share"][0] == 0.5


def test_prefit_lowers_the_dictionary_loss_on_fixed_embeddings_and_is_seeded():
    def fitted(steps: int) -> tuple[InterestDictionary, float]:
        torch.manual_seed(0)
        d = InterestDictionary(dim=16, n_levels=2, codebook_size=8, code_dim=4)
        d.kmeans_init(v, seed=0)
        return d, (d.prefit(v, steps, seed=3, batch=64) if steps else d(v).loss.detach().item())

    v = torch.randn(300, 16, generator=torch.Generator().manual_seed(1))
    _, at_kmeans = fitted(0)
    d, _ = fitted(200)
    with torch.no_grad():
        assert float(d(v).loss) < at_kmeans
    again, _ = fitted(200)
    assert all(torch.equal(a, b) for a, b in zip(d.state_dict().values(), again.state_dict().values()))
    assert v.grad is None and not v.requires_grad  # the embeddings are only read
