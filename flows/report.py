"""What a training run shows in Prefect: a markdown summary and the training curve, from plain values."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

METRICS = ("recall@20", "recall@50", "ndcg@50", "hit@50", "diversity@50", "novel_recall@50")


def metrics_markdown(ingest: dict, metrics: dict, gate: dict, tag: str | None, production: str | None,
                     curve: str | None) -> str:
    lines = [f"## train-gemirec: {ingest['source']}", "",
             f"**data**: {ingest['n_valid']:,} events, {ingest['n_users']:,} users, "
             f"{ingest['n_items']:,} items; **{ingest['n_malformed']:,} malformed rows skipped**; "
             f"data hash `{ingest['data_hash'][:12]}`", ""]
    for example in ingest.get("malformed_examples", []):
        lines.append(f"- malformed: `{example}`")
    lines += ["", "| metric | validation | test |", "|---|---:|---:|"]
    for key in METRICS:
        if key in metrics.get("test", {}):
            lines.append(f"| {key} | {100 * metrics['val'][key]:.2f} | {100 * metrics['test'][key]:.2f} |")
    lines += ["", f"best epoch {metrics.get('best_epoch')} of {metrics.get('epochs')}, "
                  f"{metrics.get('train_seconds', 0):.0f} s training", "",
              f"**quality gate**: {'promoted' if gate['promote'] else 'NOT promoted'} ({gate['reason']})", "",
              f"**registered**: `{tag}`; **production**: `{production}`"]
    if curve:
        lines += ["", f"training curve: `{curve}`"]
    return "\n".join(lines)


def plot_training_curve(history_path: str | Path, out_png: str | Path) -> Path | None:
    """Loss and validation Recall@50 per epoch from the trainer's history.json."""
    history_path = Path(history_path)
    if not history_path.exists():
        return None
    rows = json.loads(history_path.read_text())
    if not rows:
        return None
    epochs = [r["epoch"] for r in rows]
    fig, left = plt.subplots(figsize=(6, 3.2), dpi=90)
    left.plot(epochs, [r["loss"] for r in rows], color="tab:gray", marker="o", label="training loss")
    left.set_xlabel("epoch")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_ylabel("loss")
    right = left.twinx()
    right.plot(epochs, [100 * r["val_recall@50"] for r in rows], color="tab:blue", marker="o",
               label="val Recall@50")
    right.set_ylabel("val Recall@50 (%)")
    fig.legend(loc="upper center", ncols=2, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    out_png = Path(out_png)
    fig.savefig(out_png)
    plt.close(fig)
    return out_png


def data_url(png: Path) -> str:
    """Inline the image: the Prefect UI shows image artifacts by URL and a local file has none."""
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode()
