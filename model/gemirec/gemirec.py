"""GemiRec: backbone + IDMM + MIPDM + MIRM, trained on the staged schedule of DESIGN §2.5.

Stages (driven by `on_epoch_start`): warm-up epochs train the towers alone; then k-means initialises
the dictionary on all item embeddings; then everything trains jointly,
    L = L_u + L_MIRM(teacher forcing) + λ_mix L_mixture + λ_q L_IDMM + λ_g L_MIPDM,
(L_mixture and L_MIPDM also score the items up to W steps ahead: the near future the evaluation asks for),
with the item→code table refreshed (and rare codes restarted) at the start of every joint epoch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from model.baselines.towers import SingleVector, trim_left_padding
from model.config import Config, replace
from model.faiss_index import ItemIndex
from model.gemirec.diagnostics import interest_diagnostics
from model.gemirec.history_interests import history_interests, history_share
from model.gemirec.idmm import InterestDictionary, code_stats
from model.gemirec.mipdm import InterestGenerator
from model.gemirec.mirm import (
    FamilyColumns,
    InterestQuery,
    merge,
    mixture_weights,
    search_queries,
)
from model.losses import items_ahead, sampled_softmax_logits, window_mean
from model.retriever import Recommendations, Retriever
from model.sequences import SequenceData


class GemiRec(Retriever):
    train_mode = "positions"

    def __init__(self, cfg: Config, n_items: int, attributes: torch.Tensor | None, n_attr: int):
        super().__init__(cfg)
        g, b = cfg.gemirec, cfg.backbone
        self.backbone = SingleVector(cfg, n_items, attributes, n_attr)
        self.items = self.backbone.items
        self.dictionary = InterestDictionary(b.dim, g.n_levels, g.codebook_size, g.code_dim, g.beta,
                                             g.restart_threshold)
        self.generator = InterestGenerator(b.dim, g.n_levels, g.codebook_size, self.dictionary.interest_dim,
                                           g.gen_layers, b.n_heads, b.dropout, cfg.data.maxlen)
        self.query = InterestQuery(b.dim, self.dictionary.interest_dim)
        self.K = cfg.multi.n_interests
        self.register_buffer("item_codes", torch.zeros(n_items + 1, g.n_levels, dtype=torch.long))
        self.register_buffer("stage", torch.zeros((), dtype=torch.long))  # 0 warm-up, 1 joint
        self.register_buffer("joint_from", torch.tensor(-1))  # first joint epoch, once decided
        self.register_buffer("warm_curve", torch.full((g.warmup_epochs,), -1.0))  # warm-up val R@50
        self._logs: dict[str, float] = {}
        self._val = None  # validation users for the per-epoch diagnostics, set by on_epoch_start
        self._gen = torch.Generator().manual_seed(cfg.train.seed)
        self._pinned_items: np.ndarray | None = None  # see pin_item_matrix
        self._pinned_columns: FamilyColumns | None = None
        self._warm_best: dict[str, torch.Tensor] | None = None  # best warm-up backbone (warmup_patience)
        self._in_fit = False  # per-epoch validation may estimate the mixture's partition (see recommend)

    # ---- schedule -----------------------------------------------------------------------------
    def learning_rate(self) -> float:
        return self.cfg.gemirec.lr or self.cfg.train.lr

    def param_groups(self) -> list[dict]:
        scale = self.cfg.gemirec.generator_lr_scale
        if scale == 1.0:
            return super().param_groups()
        gen = list(self.generator.parameters())
        ids = {id(p) for p in gen}
        return [{"params": [p for p in self.parameters() if id(p) not in ids]},
                {"params": gen, "lr": self.learning_rate() * scale}]

    def all_item_vectors(self) -> torch.Tensor:
        ids = torch.arange(1, self.item_codes.shape[0], device=self.item_codes.device)
        return torch.cat([self.items(c) for c in ids.split(65536)])

    @torch.no_grad()
    def refresh_codes(self, compare: bool = True) -> None:
        """Re-assign every item's code. With `compare`, log `code_churn_l{c}`: the share of items whose
        code at level c changed since the previous table (the generator's and the queries' targets move
        by that much)."""
        was = self.training
        self.eval()
        v = self.all_item_vectors()
        before = self.item_codes[1:].clone() if compare else None
        self.item_codes[1:] = self.dictionary.assign(v)
        self.train(was)
        if before is not None:
            churn = (before != self.item_codes[1:]).float().mean(0)
            for c, share in enumerate(churn.tolist()):
                self._logs[f"code_churn_l{c + 1}"] = share
        stats = code_stats(self.item_codes[1:].cpu().numpy(), self.cfg.gemirec.codebook_size)
        for c, (ppl, dead) in enumerate(zip(stats["perplexity"], stats["dead_share"])):
            self._logs[f"code_perplexity_l{c + 1}"] = ppl
            self._logs[f"dead_code_share_l{c + 1}"] = dead

    def on_validation(self, epoch: int, recall50: float) -> None:
        if int(self.stage) == 0 and epoch < len(self.warm_curve):
            best = float(self.warm_curve[:epoch].max()) if epoch else -1.0
            self.warm_curve[epoch] = recall50
            if self.cfg.gemirec.warmup_patience > 0 and recall50 > best:
                self._warm_best = {k: v.detach().clone() for k, v in self.backbone.state_dict().items()}

    def _warmup_done(self, epoch: int) -> bool:
        """design choice (not from the paper): warm up until the towers plateau, within [min, max]
        epochs; k-means on barely trained embeddings collapses the dictionary (DESIGN §2.5)."""
        g = self.cfg.gemirec
        if epoch >= g.warmup_epochs:
            return True
        if epoch < max(g.min_warmup_epochs, 2):
            return False
        if g.warmup_patience > 0:
            curve = self.warm_curve[:epoch]
            return epoch - 1 - int(curve.argmax()) >= g.warmup_patience
        prev, last = float(self.warm_curve[epoch - 2]), float(self.warm_curve[epoch - 1])
        return last < prev * (1 + g.warmup_tolerance)

    @torch.no_grad()
    def on_epoch_start(self, epoch: int, data: SequenceData) -> None:
        self._in_fit = True
        if self._val is None:
            self._val = data.eval_set(1)
        if int(self.joint_from) < 0:
            if not self._warmup_done(epoch):
                self.stage.fill_(0)
                return
            self.joint_from.fill_(epoch)
            if self._warm_best is not None:  # k-means on the best warm-up embeddings, not the last ones
                self.backbone.load_state_dict(self._warm_best)
                self._warm_best = None
        if self.cfg.gemirec.freeze_backbone:
            self.backbone.requires_grad_(False)
        was = self.training
        self.eval()
        v = self.all_item_vectors()
        fresh = epoch == int(self.joint_from) or not bool(self.dictionary.initialised)
        if fresh:
            self.dictionary.kmeans_init(v, seed=self.cfg.train.seed)
            if self.cfg.gemirec.dict_prefit_steps > 0:
                self._logs["dict_prefit_loss"] = self.dictionary.prefit(
                    v, self.cfg.gemirec.dict_prefit_steps, seed=self.cfg.train.seed)
        else:
            self._logs["restarted_codes"] = float(self.dictionary.restart_rare_codes(v, self._gen))
        self.train(was)
        self.refresh_codes(compare=not fresh)  # the first table has nothing before it to compare with
        self.stage.fill_(1)

    def after_fit(self, data: SequenceData) -> None:
        """Choose K, the share of u, the history blend and the family restriction of the mixture merge on
        validation users (model/gemirec/selection.py); the choice is kept in `self.cfg`, which is what a saved
        model folder records."""
        from model.gemirec.selection import (
            choose_settings,  # late: selection imports this module's neighbours
        )

        self._in_fit = False
        if not self.cfg.gemirec.select_on_validation or int(self.stage) == 0:
            return
        best, choice = choose_settings(self, data)
        self.apply_choice(choice)
        self._logs.update({"selected_K": float(choice["n_interests"]), "selected_u_share": choice["u_share"],
                           "selected_val_recall@50": best})
        self.selected = {"K": choice["n_interests"], "merge": "mixture", "val_recall@50": best,
                         **{k: choice[k] for k in ("u_share", "history_blend", "restrict_family")}}

    def apply_choice(self, option: dict) -> None:
        """Infer with one setting of the validation grid: K (n_interests), u_share, history_blend, ..."""
        g = {k: v for k, v in option.items() if k != "n_interests"}
        self.cfg = replace(self.cfg, gemirec={"merge": "mixture", **g},
                           multi={"n_interests": option["n_interests"]})
        self.K = option["n_interests"]

    @property
    def stage_reached(self) -> str:
        """"joint" once the dictionary and the generator have trained; "warmup" for a run that stopped before
        (max_epochs or the time budget within the warm-up): such a model has one code for every item."""
        return "joint" if int(self.joint_from) >= 0 else "warmup"

    def may_stop(self, epoch: int) -> bool:
        return 0 <= int(self.joint_from) <= epoch

    def lr_factor(self, epoch: int, improved: bool) -> float:
        """design choice (not from the paper): gemirec.lr_decay < 1 shrinks the step after every joint
        epoch that did not raise validation R@50: a large step climbs fast, a smaller one then settles."""
        return self.cfg.gemirec.lr_decay if self.selectable(epoch) and not improved else 1.0

    def selectable(self, epoch: int) -> bool:
        # only joint epochs can be the kept model: a warm-up epoch is just the single-vector backbone
        return 0 <= int(self.joint_from) <= epoch

    # ---- training -----------------------------------------------------------------------------
    def positions_loss(self, inputs, targets, sampler):
        x = self.items(inputs)  # (B, L, d) item vectors, shared by the user tower and the generator
        states = self.backbone.encoder(x, inputs)  # (B, L, d): u_t at every position
        real = targets > 0
        u, t = states[real], targets[real]  # (N, d), (N,)
        cand, pos_col, log_q = sampler.candidates(t)
        cand_vec = self.candidate_vectors(cand)
        tau = self.cfg.train.temperature
        logits_u = sampled_softmax_logits(self.score_space(u), cand_vec, log_q, tau)
        loss_u = F.cross_entropy(logits_u, pos_col)
        if int(self.stage) == 0:
            return loss_u, {"loss_u": loss_u.item()}
        g_cfg = self.cfg.gemirec
        # IDMM on the step's distinct items
        uniq = torch.unique(torch.cat([inputs[inputs > 0], t]))
        loss_q = self.dictionary(self.items(uniq)).loss
        # MIPDM: tokens from the current item→code table, targets = the next item's code
        e_in = self.dictionary.embed(self.item_codes[inputs]).detach()
        g = self.generator.states(inputs, e_in, x)
        tgt_codes = self.item_codes[t]
        # column w of `ahead` = the item w steps after the target (column 0 is the target itself)
        ahead = items_ahead(targets, max(g_cfg.gen_window, g_cfg.mix_window))[real]  # (N, W)
        w_gen = ahead[:, : g_cfg.gen_window]
        nll_g = -self.generator.window_log_prob(g[real], self.item_codes[w_gen])  # (N, W_gen)
        # the next item's code weighs 1, the code of the item w + 1 steps ahead 1/w
        loss_g = window_mean(nll_g, w_gen > 0, 1.0 / torch.arange(len(nll_g[0])).clamp(min=1))
        # MIRM, teacher forcing: the query conditioned on the target's own interest
        # design choice (not from the paper): with tf_positions > 0, on a random subset of that many
        # positions (all of them by default)
        tf = slice(None)
        if 0 < g_cfg.tf_positions < len(t):
            tf = torch.randperm(len(t), generator=self._gen)[: g_cfg.tf_positions].to(t.device)
        q_tf = self.query(u[tf], self.dictionary.embed(tgt_codes[tf]).detach())
        loss_tf = F.cross_entropy(sampled_softmax_logits(self.score_space(q_tf), cand_vec, log_q, tau),
                                  pos_col[tf])
        if g_cfg.query_window > 1:
            loss_tf = loss_tf + self._window_query_loss(states, targets, cand, cand_vec, log_q)
        # MIRM through the inference path: −log Σ_k w_k p(target | q_k) over generated interests + u.
        # design choice (not from the paper): on a random subset of positions; its K × candidates
        # logits dominated the step's cost on all of them
        sel = torch.randperm(len(t), generator=self._gen)[: g_cfg.mix_positions].to(t.device)
        codes_k, logp_k = self.generator.beam_search(g[real][sel], self.K, g_cfg.beam)
        q_k = self.query(u[sel].unsqueeze(1), self.dictionary.embed(codes_k).detach())  # (S, K, d)
        S, K, d = q_k.shape
        logit_k = torch.addmm(-log_q[None, :], self.score_space(q_k).reshape(S * K, d), cand_vec.T,
                              alpha=1.0 / tau).view(S, K, -1)
        log_w = torch.log_softmax(logp_k, -1) + np.log(max(1 - g_cfg.u_share, 1e-6))
        lsm_k, lsm_u = F.log_softmax(logit_k, -1), F.log_softmax(logits_u[sel], -1)
        # -log Σ_k w_k p(item | q_k) - u's share, for the target and the items up to W_mix - 1 steps
        # after it, all gathered at once (one gather's backward instead of one per window step)
        w_mix = ahead[sel, : g_cfg.mix_window]  # (S, W_mix)
        col = torch.cat([pos_col[sel, None], torch.searchsorted(cand, w_mix[:, 1:].clamp(min=1))], 1)
        lp_k = lsm_k.gather(2, col[:, None, :].expand(-1, K, -1))  # (S, K, W_mix)
        lp_u = lsm_u.gather(1, col) + np.log(max(g_cfg.u_share, 1e-6))  # (S, W_mix)
        nll_mix = -torch.logsumexp(torch.cat([log_w.unsqueeze(-1) + lp_k, lp_u.unsqueeze(1)], 1), dim=1)
        loss_mix = window_mean(nll_mix, w_mix > 0, 1.0 / torch.arange(1, len(nll_mix[0]) + 1))
        loss = (loss_u + loss_tf + g_cfg.lambda_mix * loss_mix + g_cfg.lambda_q * loss_q
                + g_cfg.lambda_g * loss_g)
        return loss, {"loss_u": loss_u.item(), "loss_tf": loss_tf.item(), "loss_g": loss_g.item(),
                      "loss_mix": loss_mix.item()}

    def _window_query_loss(self, states, targets, cand, cand_vec, log_q) -> torch.Tensor:
        """design choice (not from the paper): a query conditioned on the interest of the item w steps
        ahead should retrieve that item, so the K queries learn to cover the near future (the
        evaluation's targets are the whole last 20 % of a history), not just the next item."""
        total = states.new_zeros(())
        tau, n_max = self.cfg.train.temperature, self.cfg.gemirec.mix_positions
        window = items_ahead(targets, self.cfg.gemirec.query_window)
        for w in range(1, self.cfg.gemirec.query_window):
            ahead = window[..., w]
            ok = torch.nonzero((ahead > 0) & (targets > 0), as_tuple=True)
            if len(ok[0]) == 0:
                continue
            pick = torch.randperm(len(ok[0]), generator=self._gen)[:n_max].to(states.device)
            rows, cols = ok[0][pick], ok[1][pick]
            item = ahead[rows, cols]
            q = self.query(states[rows, cols], self.dictionary.embed(self.item_codes[item]).detach())
            logits = sampled_softmax_logits(self.score_space(q), cand_vec, log_q, tau)
            total = total + F.cross_entropy(logits, torch.searchsorted(cand, item)) / w
        return total

    # ---- inference ----------------------------------------------------------------------------
    def interests(self, ids: torch.Tensor, k: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> u (B, d), codes (B, K, C), probabilities (B, K) renormalised over the K kept (K = k or the
        model's K; serving may ask for fewer or more interests per request)."""
        ids = trim_left_padding(ids)  # only the last position is read
        u, codes, logp = self.generated(ids, k)
        return u, codes, self.interest_probs(ids, codes, logp, self.cfg.gemirec.history_blend)

    def generated(self, ids: torch.Tensor, k: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """u, the K interest codes and their log-probabilities before the history blend."""
        x = self.items(ids)  # shared by the user tower and the generator, as in training
        u = self.backbone.encoder(x, ids)[:, -1]
        if self.cfg.gemirec.interest_source == "history":
            codes, probs = history_interests(self.item_codes, ids, self.cfg.gemirec.codebook_size,
                                             k or self.K)
            return u, codes, probs.log()
        e_in = self.dictionary.embed(self.item_codes[ids])
        g = self.generator.states(ids, e_in, x)[:, -1]
        codes, logp = self.generator.beam_search(g, k or self.K, self.cfg.gemirec.beam)
        return u, codes, logp

    def interest_probs(self, ids: torch.Tensor, codes: torch.Tensor, logp: torch.Tensor, beta: float
                       ) -> torch.Tensor:
        """The K interests' weights, blended with the history's share of each (history_blend β)."""
        if beta > 0 and self.cfg.gemirec.interest_source != "history":
            share = history_share(self.item_codes, ids, codes, self.cfg.gemirec.codebook_size)
            logp = (1 - beta) * torch.log_softmax(logp, -1) + beta * share
        return torch.softmax(logp, -1)

    @torch.no_grad()
    def recommend(self, histories: np.ndarray, index: ItemIndex, n: int, k: int | None = None
                  ) -> Recommendations:
        was = self.training
        if was:  # train()/eval() walk every submodule: a third of a served request's time, always in eval
            self.eval()
        ids = torch.as_tensor(histories, device=self.item_codes.device)
        if int(self.stage) == 0:  # warm-up: only the backbone exists yet
            self.train(was)
            return self.backbone.recommend(histories, index, n)
        u, codes, probs = self.interests(ids, k)
        K = codes.shape[1]  # fewer than asked when the dictionary has fewer codes
        all_q = self.query_matrix(u, codes)
        if was:
            self.train()
        g = self.cfg.gemirec
        probs_np, codes_np = probs.float().cpu().numpy(), codes.cpu().numpy()
        weights = mixture_weights(probs_np, g.u_share)
        scores, items, allowed, item_matrix, lse = self.query_lists(all_q, codes_np, index, n,
                                                                    g.restrict_family, g.merge == "mixture")
        ranked = merge(g.merge, scores, items, weights, n, queries=all_q, item_matrix=item_matrix, lse=lse,
                       temperature=self.cfg.train.temperature, probs=probs_np, alpha=g.weighted_alpha,
                       n_interests=K, allowed=allowed)
        return Recommendations(ranked=ranked, per_interest=items[:, :K, :n], queries=all_q[:, :K],
                               interest_codes=codes_np, interest_probs=probs_np,
                               merge_queries=all_q, merge_weights=weights, merge_lse=lse)

    def query_matrix(self, u: torch.Tensor, codes: torch.Tensor) -> np.ndarray:
        """The K interest queries, then u, in the scoring space: (B, K+1, d)."""
        q = self.score_space(self.query(u.unsqueeze(1), self.dictionary.embed(codes)))  # (B, K, d)
        return torch.cat([q, self.score_space(u).unsqueeze(1)], 1).float().cpu().numpy()

    def query_lists(self, all_q: np.ndarray, codes_np: np.ndarray, index: ItemIndex, n: int, restrict: bool,
                    mixture: bool, exact_lse: np.ndarray | None = None):
        """Each query's top-n list (an interest's within its own level-1 family when `restrict`), and what
        the merge needs beside them: -> scores, items (B, K+1, n), the family filter of the candidates
        (None unrestricted), the item matrix and the queries' log-partitions (None unless `mixture`).
        `exact_lse`, the log-partitions an earlier call returned for these very queries, is reused when
        the partition is exact (it does not depend on the restriction); an estimate is always recomputed,
        so an estimated `exact_lse` is ignored."""
        return search_queries(
            all_q, codes_np, index, n, restrict, mixture, exact_lse=exact_lse, g=self.cfg.gemirec,
            temperature=self.cfg.train.temperature,
            family=self.item_codes[:, 0].cpu().numpy() if restrict else None,
            pinned=(self._pinned_items, self._pinned_columns), in_fit=self._in_fit,
            item_vectors=lambda: self._item_matrix_cache(index))

    def _item_matrix_cache(self, index: ItemIndex) -> np.ndarray:
        # the exact index already holds these vectors (built from item_matrix() for this very model), so
        # read them back instead of running the item tower again on every call
        if self._pinned_items is not None:
            return self._pinned_items
        stored = index.vectors()
        return stored if stored is not None else self.item_matrix()

    def pin_item_matrix(self, matrix: np.ndarray | None) -> None:
        """Serving: frozen weights, so the (n, d) matrix the mixture merge needs is computed once, not
        on every request (it costs as much as the rest of a request at 24k items)."""
        self._pinned_items = matrix
        self._pinned_columns = None if matrix is None else FamilyColumns(matrix, self.item_codes[1:, 0].cpu())

    @property
    def pinned_item_matrix(self) -> np.ndarray | None:
        return self._pinned_items

    def epoch_logs(self) -> dict[str, float]:
        if int(self.stage) == 1 and self._val is not None:
            self._logs.update(interest_diagnostics(self, self._val, max_users=1000))
        return dict(self._logs)

