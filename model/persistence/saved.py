"""A saved model is a self-describing folder, loadable from that folder alone (DESIGN §4).

    config.json        the full Config
    weights.pt         state_dict only, read back with torch.load(weights_only=True) (no pickle)
    items.parquet      dense id ↔ source item id, category, attribute indices, training popularity
    item_codes.parquet GemiRec: the item→interest-code table
    interests.json     GemiRec: a readable description of every interest code
    index.faiss        the exact item index the recommendations come from
    manifest.json      model, metrics, data hash, code version, and a sha256 of every file above
                       (HMAC-signed when GEMIREC_MODEL_SIGNING_KEY is set)

What a folder may hold, and how it is verified before anything is loaded: integrity.py.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from model.config import Config
from model.faiss_index import ItemIndex
from model.persistence.integrity import ModelFolderError, sha256_file, verify_folder, write_manifest
from model.retriever import MostPopular, Recommendations
from model.sequences import SequenceData

FORMAT_VERSION = 1


__all__ = ["ModelFolderError", "LoadedModel", "load_model", "save_model", "sha256_file", "verify_folder"]


def code_version() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_model(model, data: SequenceData, cfg: Config, folder: str | Path, metrics: dict | None = None,
               lineage: dict | None = None, index_kind: str = "flat") -> Path:
    """`index_kind`: the served FAISS index — flat (exact, the default) or ivfpq/ivf/hnsw for catalogues where
    exact search is too slow (benchmarks/results/serving-catalogue.md); evaluation is always exact."""
    from model.gemirec.explain import describe_interests  # late: explain imports this module's loader

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = getattr(model, "cfg", cfg)  # the model's own config holds settings chosen after training
    (folder / "config.json").write_text(cfg.to_json())
    items = pd.DataFrame({
        "dense_id": np.arange(1, data.n_items + 1, dtype=np.int64),
        "item_id": data.item_ids[1:],
        "category": data.item_category[1:],
        "attributes": list(data.item_attributes[1:]),
        "popularity": data.item_popularity()[1:],
    })
    items.to_parquet(folder / "items.parquet", index=False)
    files = ["config.json", "items.parquet"]
    if isinstance(model, MostPopular):
        pass  # the popularity column is the whole model
    else:
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, folder / "weights.pt")
        ItemIndex.build(model.item_matrix(), index_kind).save(folder / "index.faiss")
        files += ["weights.pt", "index.faiss"]
    if hasattr(model, "item_codes"):
        codes = model.item_codes[1:].cpu().numpy()
        table = pd.DataFrame({"item_id": data.item_ids[1:]})
        for c in range(codes.shape[1]):
            table[f"code_l{c + 1}"] = codes[:, c]
        table.to_parquet(folder / "item_codes.parquet", index=False)
        (folder / "interests.json").write_text(json.dumps(describe_interests(model, data), indent=1))
        files += ["item_codes.parquet", "interests.json"]
    manifest = {
        "format_version": FORMAT_VERSION,
        "model": cfg.model,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "code_version": code_version(),
        "data_fingerprint": data.fingerprint(),
        "n_items": data.n_items,
        "n_attributes": data.n_attributes,
        "metrics": metrics or {},
        "lineage": lineage or {},
        "files": {name: sha256_file(folder / name) for name in files},
    }
    write_manifest(folder, manifest)  # signed when GEMIREC_MODEL_SIGNING_KEY is set
    return folder


@dataclass
class LoadedModel:
    model: object
    cfg: Config
    items: pd.DataFrame
    index: ItemIndex | None
    manifest: dict

    @property
    def item_ids(self) -> np.ndarray:
        return self.items["item_id"].to_numpy()

    def encode(self, source_ids: np.ndarray) -> np.ndarray:
        """Source item ids -> dense ids (0 for unknown items)."""
        order = np.argsort(self.item_ids, kind="stable")
        sorted_ids = self.item_ids[order]
        pos = np.clip(np.searchsorted(sorted_ids, source_ids), 0, len(sorted_ids) - 1)
        return np.where(sorted_ids[pos] == source_ids, order[pos] + 1, 0).astype(np.int64)

    def histories(self, sequences: list[list[int]]) -> np.ndarray:
        """Source-id histories -> left-padded dense matrix (B, maxlen); unknown items are dropped."""
        L = self.cfg.data.maxlen
        out = np.zeros((len(sequences), L), dtype=np.int64)
        for row, seq in enumerate(sequences):
            dense = self.encode(np.asarray(seq, dtype=np.int64))
            dense = dense[dense > 0][-L:]
            out[row, L - len(dense):] = dense
        return out

    def recommend(self, sequences: list[list[int]], n: int = 50) -> Recommendations:
        rec = self.model.recommend(self.histories(sequences), self.index, n)
        ids = np.concatenate([[-1], self.item_ids])
        rec.ranked = np.where(rec.ranked >= 0, ids[np.maximum(rec.ranked, 0)], -1)
        return rec


def load_model(folder: str | Path) -> LoadedModel:
    from model.training.train import build_from_catalogue

    folder = Path(folder)
    manifest = verify_folder(folder)
    cfg = Config.from_dict(json.loads((folder / "config.json").read_text()))
    items = pd.read_parquet(folder / "items.parquet")
    if cfg.model == "mostpop":
        pop = np.concatenate([[0.0], items["popularity"].to_numpy()])
        return LoadedModel(MostPopular(pop), cfg, items, None, manifest)
    attrs = np.zeros((len(items) + 1, max(1, max((len(a) for a in items["attributes"]), default=1))),
                     dtype=np.int64)
    for row, a in enumerate(items["attributes"], start=1):
        attrs[row, : len(a)] = a
    model = build_from_catalogue(cfg, len(items), attrs, int(manifest["n_attributes"]))
    state = torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    index = ItemIndex.load(folder / "index.faiss")
    with torch.no_grad():  # the scoring dimension from one row, not the whole catalogue through the tower
        dim = model.candidate_vectors(torch.zeros(1, dtype=torch.long)).shape[-1]  # id 0: padding, always there
    check_index(folder, index, len(items), dim)
    return LoadedModel(model, cfg, items, index, manifest)


def check_index(folder: Path, index: ItemIndex, n_items: int, dim: int) -> None:
    """The index must hold one vector per catalogue item, of the model's dimension: an index of another
    catalogue would answer with ids the service cannot map (500s on every /similar_items)."""
    if index.n_items != n_items or index.index.d != dim:
        raise ModelFolderError(f"{folder}: index.faiss holds {index.n_items} vectors of dimension "
                               f"{index.index.d}, the catalogue {n_items} items of dimension {dim}")
