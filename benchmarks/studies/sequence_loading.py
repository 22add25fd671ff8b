"""The trainer's input, before and after: a saved training set read through a pandas frame
(`Interactions.load` + `SequenceData.from_frames`) against `SequenceData.from_parquet`, each in its own child
process, back to back in one run, with the peak RSS of the process tree and the wall time.

    python -m benchmarks.studies.sequence_loading runs/scale/sim-10M/training_set
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.process_tree import run_measured

ROOT = Path(__file__).resolve().parents[2]
READERS = {
    "pandas frame": "from features.events import Interactions; d = Interactions.load(F); "
                    "s = SequenceData.from_frames(d.events, d.items, cfg)",
    "from_parquet": "s = SequenceData.from_parquet(F / 'events.parquet', F / 'items.parquet', cfg)",
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    setup = (f"from pathlib import Path; from model.config import load_config; from model.sequences import "
             f"SequenceData; F = Path({str(args.folder.resolve())!r}); cfg = load_config('long').data; ")
    seen: dict[str, list] = {name: [] for name in READERS}
    for _ in range(args.repeats):
        for name, code in READERS.items():  # alternated, so drift hits both
            done = run_measured([sys.executable, "-c", setup + code + "; print(s.fingerprint())"],
                                Path("/dev/null"), ROOT, {})
            if done.returncode != 0:
                raise SystemExit(f"{name} failed")
            seen[name].append(done)
    for name, runs in seen.items():
        print(f"{name}: wall {min(r.seconds for r in runs):.1f} s, peak RSS {max(r.peak_rss_gb for r in runs):.2f} GB"
              f" (best / worst of {len(runs)})")
    old, new = (seen[n] for n in READERS)
    print(f"pandas / from_parquet: {min(r.seconds for r in old) / min(r.seconds for r in new):.2f} x the time, "
          f"{max(r.peak_rss_gb for r in old) / max(r.peak_rss_gb for r in new):.2f} x the peak memory")


if __name__ == "__main__":
    main()
