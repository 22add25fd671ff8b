"""IDMM: the shared, quantized interest dictionary (DESIGN §2.2).

Residual quantization over stop-gradient item embeddings. The interest embedding of a code tuple
(m_1 … m_C) is the CONCATENATION of the chosen codewords (the paper's choice), not the RQ sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.faiss_index import kmeans


@dataclass
class Quantized:
    codes: torch.Tensor  # (N, C) long
    embedding: torch.Tensor  # (N, C*d_q) concat of chosen codewords (no gradient path to z_enc)
    loss: torch.Tensor  # scalar RQ-VAE loss
    residuals: list[torch.Tensor]  # r_1 … r_C, each (N, d_q), detached


def code_stats(codes: np.ndarray, size: int) -> dict[str, list[float]]:
    """Per level: usage perplexity exp(H) over items and share of codes no item uses (collapse signal)."""
    out: dict[str, list[float]] = {"perplexity": [], "dead_share": []}
    for c in range(codes.shape[1]):
        counts = np.bincount(codes[:, c], minlength=size).astype(np.float64)
        p = counts / max(counts.sum(), 1.0)
        nz = p[p > 0]
        out["perplexity"].append(float(np.exp(-(nz * np.log(nz)).sum())))
        out["dead_share"].append(float((counts == 0).mean()))
    return out


class InterestDictionary(nn.Module):
    def __init__(self, dim: int, n_levels: int, codebook_size: int, code_dim: int, beta: float = 0.25,
                 restart_threshold: float = 0.1):
        super().__init__()
        self.C, self.M, self.dq = n_levels, codebook_size, code_dim
        self.beta = beta
        self.restart_threshold = restart_threshold
        # design choice (not from the paper): LayerNorm on z_enc's output keeps the residual scale fixed,
        # which kept every code alive in the prototype's runs
        self.encoder = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, code_dim),
                                     nn.LayerNorm(code_dim))
        self.codebooks = nn.Parameter(torch.randn(n_levels, codebook_size, code_dim) * 0.1)
        self.decoder = nn.Sequential(nn.Linear(n_levels * code_dim, 2 * dim), nn.GELU(),
                                     nn.Linear(2 * dim, dim))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @property
    def interest_dim(self) -> int:
        return self.C * self.dq

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (..., C) -> e_m (..., C*d_q) = concat_c E_c[m_c]."""
        parts = [self.codebooks[c][codes[..., c]] for c in range(self.C)]
        return torch.cat(parts, dim=-1)

    def forward(self, item_vectors: torch.Tensor) -> Quantized:
        v = item_vectors.detach()  # sg[v_i]: the dictionary loss never moves the item tower
        r = self.encoder(v)
        codes, chosen, st_parts, residuals = [], [], [], []
        loss = v.new_zeros(())
        for c in range(self.C):
            book = self.codebooks[c]
            dist = (r.detach() ** 2).sum(1, keepdim=True) - 2 * r.detach() @ book.T + (book**2).sum(1)
            m = dist.argmin(1)
            e = book[m]
            # codebook term ‖sg[r_c] − E_c[m_c]‖² + commitment β‖r_c − sg[E_c[m_c]]‖²
            loss = loss + F.mse_loss(e, r.detach()) + self.beta * F.mse_loss(r, e.detach())
            st_parts.append(r + (e - r).detach())  # straight-through estimator to z_enc
            codes.append(m)
            chosen.append(e)
            residuals.append(r.detach())
            r = r - e.detach()  # r_{c+1} = r_c − sg[E_c[m_c]]
        recon = self.decoder(torch.cat(st_parts, dim=-1))
        loss = loss + F.mse_loss(recon, v)
        return Quantized(torch.stack(codes, 1), torch.cat(chosen, -1), loss, residuals)

    @torch.no_grad()
    def assign(self, item_vectors: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        """The item→code table: (N, C) codes of every item (recomputed after every epoch)."""
        return torch.cat([self.forward(v).codes for v in item_vectors.split(chunk)])

    @torch.no_grad()
    def kmeans_init(self, item_vectors: torch.Tensor, seed: int = 0) -> None:
        """design choice (not from the paper): k-means per level on the residuals of all items,
        run after the towers' warm-up (on barely trained embeddings it collapses the dictionary)."""
        r = self.encoder(item_vectors.detach())
        for c in range(self.C):
            centroids, assign = kmeans(r.cpu().numpy(), self.M, seed=seed + c)
            self.codebooks.data[c] = torch.as_tensor(centroids, device=r.device)
            r = r - self.codebooks[c][torch.as_tensor(assign, device=r.device).long()]
        self.initialised.fill_(True)

    def prefit(self, item_vectors: torch.Tensor, steps: int, seed: int, batch: int = 1024,
               lr: float = 1e-3) -> float:
        """design choice (not from the paper): right after k-means, fit the dictionary (encoder, codebooks,
        decoder) alone on the fixed warm-up embeddings for `steps` Adam steps, so that the item→code table
        has settled before the generator and the queries start learning from it. -> the last step's loss."""
        v = item_vectors.detach()
        gen = torch.Generator(device=v.device).manual_seed(seed)
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        loss = v.new_zeros(())
        with torch.enable_grad():
            for _ in range(steps):
                pick = torch.randint(0, len(v), (min(batch, len(v)),), generator=gen, device=v.device)
                loss = self.forward(v[pick]).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return loss.detach().item()

    @torch.no_grad()
    def restart_rare_codes(self, item_vectors: torch.Tensor, generator: torch.Generator) -> int:
        """Move codes used below `restart_threshold` × mean usage onto live residuals of random items.

        design choice (not from the paper): the standard dead-code restart of VQ training.
        """
        q = self.forward(item_vectors)
        restarted = 0
        for c in range(self.C):
            counts = torch.bincount(q.codes[:, c], minlength=self.M).float()
            rare = torch.nonzero(counts < self.restart_threshold * counts.mean()).flatten()
            if len(rare) == 0:
                continue
            pick = torch.randint(0, len(item_vectors), (len(rare),), generator=generator,
                                 device=generator.device).to(item_vectors.device)
            noise = 0.01 * torch.randn(len(rare), self.dq, device=item_vectors.device)
            self.codebooks.data[c, rare] = q.residuals[c][pick] + noise
            restarted += len(rare)
        return restarted
