"""Readable interests: what each interest code stands for (top categories, most popular items).

    python -m model.gemirec.explain runs/my-model            # prints every interest of a saved model
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from model.sequences import SequenceData


def describe_interests(model, data: SequenceData, top: int = 5) -> list[dict]:
    codes = model.item_codes[1:].cpu().numpy()  # (n, C)
    pop = data.item_popularity()[1:]
    cats = data.item_category[1:]
    keys = [tuple(int(x) for x in row) for row in codes]
    groups: dict[tuple, list[int]] = {}
    for idx, key in enumerate(keys):
        groups.setdefault(key, []).append(idx)
    total_pop = max(pop.sum(), 1.0)
    out = []
    for key in sorted(groups):
        idx = np.asarray(groups[key])
        order = idx[np.argsort(-pop[idx], kind="stable")][:top]
        cat_ids, cat_counts = np.unique(cats[idx][cats[idx] >= 0], return_counts=True)
        cat_order = np.argsort(-cat_counts, kind="stable")[:top]
        label_cat = [int(c) for c in cat_ids[cat_order][:2]]
        out.append({
            "code": list(key),
            "label": "cat " + "/".join(map(str, label_cat)) if label_cat else f"code {key}",
            "n_items": len(idx),
            "traffic_share": float(pop[idx].sum() / total_pop),
            "top_categories": [
                {"category": int(cat_ids[j]), "share": float(cat_counts[j] / len(idx))} for j in cat_order
            ],
            "top_items": [int(data.item_ids[i + 1]) for i in order],
        })
    return out


def print_interests(interests: list[dict], console: Console | None = None) -> None:
    table = Table(title="interests")
    for col in ("code", "items", "traffic", "top categories (share of items)", "most popular items"):
        table.add_column(col)
    for it in interests:
        cats = ", ".join(f"{c['category']} ({100 * c['share']:.0f}%)" for c in it["top_categories"])
        table.add_row(str(tuple(it["code"])), str(it["n_items"]), f"{100 * it['traffic_share']:.1f}%", cats,
                      ", ".join(map(str, it["top_items"])))
    (console or Console()).print(table)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Print what every interest code of a saved model stands for.")
    p.add_argument("folder", type=Path)
    args = p.parse_args(argv)
    path = args.folder / "interests.json"
    if not path.exists():
        raise SystemExit(f"{path} not found: only GemiRec model folders carry interests")
    print_interests(json.loads(path.read_text()))


if __name__ == "__main__":
    main()
