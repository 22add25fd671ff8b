"""The `benchmark-gemirec` flow: datasets × models × seeds as Prefect tasks on a Dask cluster, then tables.

Each task is one `benchmarks.run.run_one` call, so the flow shares the campaign's cache: a (dataset,
model, seed, config) that has a result returns it at once, and a stopped flow run reruns only what is
missing. Once a dataset's runs are in, its tables are rebuilt from the cache exactly as
`python -m benchmarks.run` does. A failed run fails the flow and leaves that dataset's tables as they were.

    python -m flows.benchmark_flow --datasets simulator-tiny --models mostpop,single --seeds 2 --workers 2
    python -m flows.benchmark_flow --datasets ml-100k,lastfm-s3rec --models all --seeds 3 \\
        --address tcp://scheduler:8786        # an existing Dask cluster (docs/scaling.md)

Every worker is one process with one thread, and each run pins torch to one thread too, so `workers`
runs train side by side without fighting over cores.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect_dask import DaskTaskRunner


@dataclass(frozen=True)
class Cluster:
    workers: int = 2  # processes of a local cluster, one run each at a time
    address: str | None = None  # "tcp://host:8786": an existing Dask scheduler instead of a local cluster

    def task_runner(self) -> DaskTaskRunner:
        if self.address:
            return DaskTaskRunner(address=self.address)
        return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                              cluster_kwargs=self.local_cluster_kwargs())

    def local_cluster_kwargs(self) -> dict:
        return {"n_workers": self.workers, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1",
                "dashboard_address": None}


@contextlib.contextmanager
def _pointed_at(cache_dir: str | None, results_dir: str | None):
    """benchmarks/run.py keeps its folders as module constants, which suits its command line; a flow run
    may name others. Set for the call and put back, in whichever worker process runs it (one task at a
    time per process: threads_per_worker=1)."""
    from benchmarks import run

    saved = run.CACHE, run.RESULTS
    run.CACHE = Path(cache_dir) if cache_dir else saved[0]
    run.RESULTS = Path(results_dir) if results_dir else saved[1]
    try:
        yield run
    finally:
        run.CACHE, run.RESULTS = saved


@functools.lru_cache(maxsize=2)
def _sequences(dataset: str, data_dir: str | None, preset: str, overrides: tuple[str, ...]):
    """A worker loads each dataset once, not once per run it is handed."""
    from features.datasets import load_dataset
    from model.config import load_config
    from model.sequences import SequenceData

    inter = load_dataset(dataset, data_dir)
    return SequenceData.from_frames(inter.events, inter.items, load_config(preset, list(overrides)).data)


@task(cache_policy=NO_CACHE, task_run_name="{dataset}/{model}{label_suffix}/seed {seed}")
def benchmark_run(dataset: str, model: str, seed: int, preset: str, overrides: list[str],
                  data_dir: str | None, label_suffix: str, force: bool, cache_dir: str | None) -> dict:
    """Train and evaluate one (dataset, model, seed), or read its cached result."""
    from model.config import load_config, replace

    data = _sequences(dataset, data_dir, preset, tuple(overrides))
    cfg = replace(load_config(preset, overrides), model=model, train={"seed": seed})
    label = model + label_suffix
    with _pointed_at(cache_dir, None) as run:
        # run_one's own lookup: a record made with another fixed thread count is retrained, not reused
        path, found = run.cached_record(dataset, label, cfg, run.run_key(dataset, data.fingerprint(), cfg))
        cached = found is not None and not force
        record = run.run_one(dataset, data, cfg, label, force)
    get_run_logger().info("%s seed %d: test R@50 %.4f (%s)", label, seed, record["test"]["recall@50"],
                          "cached" if cached else f"trained in {record['train_seconds']:.0f}s")
    return {"label": label, "seed": seed, "path": str(path), "cached": cached,
            "data_fingerprint": record["data_fingerprint"], "test_recall@50": record["test"]["recall@50"]}


@task(cache_policy=NO_CACHE)
def tables(dataset: str, runs: list[dict], command: str, cache_dir: str | None, results_dir: str | None
           ) -> str:
    """Every cached result of this dataset's data and cache version, newest config per label, tabulated."""
    fingerprints = {r["data_fingerprint"] for r in runs}
    with _pointed_at(cache_dir, results_dir) as run:
        records = [json.loads(f.read_text()) for f in sorted((run.CACHE / dataset).glob("*.json"))]
        records = [r for r in records if r["data_fingerprint"] in fingerprints
                   and r.get("cache_version") == run.CACHE_VERSION]
        return str(run.write_tables(dataset, run._latest_per_label(records), command))


@flow(name="benchmark-gemirec", task_runner=Cluster().task_runner(), log_prints=False)
def benchmark_gemirec(
    datasets: list[str],
    models: list[str] | None = None,
    seeds: int = 1,
    preset: str | None = None,
    overrides: list[str] | None = None,
    data_dir: str | None = None,
    label_suffix: str = "",
    force: bool = False,
    cache_dir: str | None = None,
    results_dir: str | None = None,
) -> dict:
    """Fan the campaign out; return {dataset: {"table": path, "runs": [...], "cached": n}}.

    `models` defaults to every model; `preset` to the dataset's (benchmarks/run.py); `cache_dir` and
    `results_dir` to benchmarks/cache and benchmarks/results."""
    from benchmarks.run import ALL_MODELS, DATASET_PRESETS

    models = list(models or ALL_MODELS)
    given = list(overrides or [])
    # one torch thread per run: a worker is one core's worth (run_key ignores threads, so caches match)
    overrides = ["train.threads=1", *given]
    submitted = {}
    for dataset in datasets:
        dataset_preset = preset or DATASET_PRESETS.get(dataset, "default")
        submitted[dataset] = [
            benchmark_run.submit(dataset, model, seed, dataset_preset, overrides, data_dir, label_suffix,
                                 force, cache_dir)
            for model in models for seed in range(seeds)]
    command = f"flow benchmark-gemirec: models {','.join(models)}; seeds {seeds}; overrides {given or 'none'}"
    table_futures = {dataset: tables.submit(dataset, futures, command, cache_dir, results_dir)
                     for dataset, futures in submitted.items()}
    out = {}
    for dataset, future in table_futures.items():
        runs = [f.result() for f in submitted[dataset]]
        out[dataset] = {"table": future.result(), "runs": runs, "cached": sum(r["cached"] for r in runs)}
        get_run_logger().info("%s: %d runs (%d cached), table %s", dataset, len(runs), out[dataset]["cached"],
                              out[dataset]["table"])
    return out


def run_benchmarks(cluster: Cluster = Cluster(), **parameters) -> dict:
    """The flow on a chosen cluster (the decorator's default is a local one with 2 workers)."""
    return benchmark_gemirec.with_options(task_runner=cluster.task_runner())(**parameters)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", required=True, help="comma list")
    p.add_argument("--models", default="all", help="comma list or 'all'")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--preset", default=None)
    p.add_argument("--set", action="append", default=[], help="config override, e.g. train.lr=0.003")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--label-suffix", default="")
    p.add_argument("--force", action="store_true")
    p.add_argument("--workers", type=int, default=Cluster.workers)
    p.add_argument("--address", default=None, help="an existing Dask scheduler, tcp://host:8786")
    args = p.parse_args(argv)
    run_benchmarks(Cluster(args.workers, args.address), datasets=args.datasets.split(","),
                   models=None if args.models == "all" else args.models.split(","), seeds=args.seeds,
                   preset=args.preset, overrides=args.set, data_dir=args.data_dir,
                   label_suffix=args.label_suffix, force=args.force)


if __name__ == "__main__":
    main()
