"""What GemiRec's generated interests are worth, per epoch and after training (DESIGN §2.7).

`interest_diagnostics`: the generator's top-K hit rate and the oracle readout (the recall the MIRM
queries reach when given the targets' own interests). `next_interest_recovery`: on the simulator, how
often the planted next interest is among the K generated.
"""

from __future__ import annotations

import numpy as np
import torch

from model.faiss_index import ItemIndex
from model.gemirec.history_interests import flat_codes, history_interests
from model.retriever import Retriever
from model.sequences import SequenceData

# The functions take a GemiRec, typed by its base class: gemirec.py calls them every epoch, so importing
# GemiRec here would make the two modules import each other.
GemiRec = Retriever


@torch.no_grad()
def interest_diagnostics(model: GemiRec, es, max_users: int = 1000, n: int = 50) -> dict[str, float]:
    """Top-K hit rate of the generated interests and the oracle readout (DESIGN §2.7)."""
    was = model.training
    model.eval()
    hist = torch.as_tensor(es.histories[:max_users], device=model.item_codes.device)
    targets = es.targets[:max_users]
    u, codes, _ = model.interests(hist)
    codes_np = codes.cpu().numpy()
    table = model.item_codes.cpu().numpy()
    hit, total = 0, 0
    oracle_pairs, oracle_targets = [], []
    for row in range(len(targets)):
        t = targets[row][targets[row] >= 0]
        tc = table[t]  # (T, C)
        match = (tc[:, None, :] == codes_np[row][None]).all(-1).any(1)
        hit += int(match.sum())
        total += len(t)
        for code in np.unique(tc, axis=0):
            oracle_pairs.append((row, code))
            oracle_targets.append(set(t[(tc == code).all(1)].tolist()))
    rows = torch.as_tensor([r for r, _ in oracle_pairs], device=u.device)
    oc = torch.as_tensor(np.stack([c for _, c in oracle_pairs]), device=u.device)
    q = model.score_space(model.query(u[rows], model.dictionary.embed(oc))).float().cpu().numpy()
    index = ItemIndex.build(model.item_matrix(), "flat")
    _, top = index.search(q, n)
    found = np.zeros(len(targets))
    for j, (row, _) in enumerate(oracle_pairs):
        found[row] += len(oracle_targets[j] & set(top[j].tolist()))
    sizes = np.maximum((targets >= 0).sum(1), 1)
    model.train(was)
    return {"topk_hit": hit / max(total, 1), "oracle_recall@50": float((found / sizes).mean())}


@torch.no_grad()
def next_interest_recovery(model: GemiRec, data: SequenceData, part: int = 2) -> dict[str, float]:
    """How often the category of a user's NEXT item is among the categories of the K generated interests.

    On the simulator categories are the planted topics, so this measures whether the generator recovers
    the planted next interest. Each code stands for the majority category of its items. Reference: the
    same hit rate for the K most frequent categories of the history (what a history-only model can do),
    and for the K most frequent codes of the history (the same count in code space: the gap between the
    two is the dictionary's, the gap between the codes' count and the generator is the generator's).
    """
    es = data.eval_set(part)
    cats = data.item_category
    m = model.cfg.gemirec.codebook_size
    key = flat_codes(model.item_codes.cpu().numpy(), m)
    majority = {}
    for k in np.unique(key[1:]):
        member = cats[1:][key[1:] == k]
        member = member[member >= 0]
        majority[int(k)] = int(np.bincount(member).argmax()) if len(member) else -1
    was = model.training
    model.eval()
    ids = torch.as_tensor(es.histories, device=model.item_codes.device)
    _, codes, _ = model.interests(ids)
    model.train(was)
    codes = codes.cpu().numpy()
    history_codes = history_interests(model.item_codes, ids, m, codes.shape[1])[0].cpu().numpy()
    hits, ref_hits, code_ref_hits = [], [], []
    for row, u in enumerate(es.users):
        seq = data.sequence(u)
        nxt = cats[seq[len(es.full_histories[row])]]
        if nxt < 0:
            continue
        hits.append(nxt in {majority.get(int(f), -1) for f in flat_codes(codes[row], m)})
        code_ref_hits.append(nxt in {majority.get(int(f), -1) for f in flat_codes(history_codes[row], m)})
        hist_c = cats[es.full_histories[row]]
        hist_c = hist_c[hist_c >= 0]
        top = np.argsort(-np.bincount(hist_c), kind="stable")[: codes.shape[1]] if len(hist_c) else []
        ref_hits.append(nxt in set(np.asarray(top).tolist()))
    return {"next_interest_hit": float(np.mean(hits)) if hits else float("nan"),
            "history_topk_category_hit": float(np.mean(ref_hits)) if ref_hits else float("nan"),
            "history_topk_code_hit": float(np.mean(code_ref_hits)) if code_ref_hits else float("nan")}
