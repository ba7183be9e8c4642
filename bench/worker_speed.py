"""Measurement (not a test): the model's speed inside a Dask worker against the same code in this process.

Evaluate's units run in Dask worker processes, so the encoder speed a run sees is the worker's. Two of
Dask's defaults slow a worker that runs a network on all of its cores (``flows.cluster.model_worker_settings``
says why); this measures LiteMedSAM's ``encode`` (the runtime samatlas picks: ONNX Runtime on a CPU)
on one random uint8 256x256x3 image (its content does not change the encoder's work) after a warm-up,
in interleaved rounds (a fresh one-worker cluster each time), keeping each variant's fastest round:

``process``     in this process, on the cores' thread count (the baseline);
``dask``        in a local cluster's one worker with Dask's defaults;
``samatlas``    in a local cluster's one worker started by ``flows.cluster.start_cluster``.

Prints the figures, then ONE JSON line with seconds per pass, each worker's ratio over the process and
each worker's peak RSS.

    python bench/worker_speed.py [--passes 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OPTIONS = {"n_workers": 1, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1", "dashboard_address": None}


def encode_s(passes: int, threads: int) -> float:
    """Seconds per ``encode`` of LiteMedSAM (built once per process) on a random image, after a warm-up."""
    import numpy as np
    import torch

    from tasks.models import load_model

    torch.set_num_threads(threads)  # before the model is built: its ONNX Runtime sessions take it
    model = load_model("litemedsam")
    image = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    model.encode(image)
    start = time.perf_counter()
    for _ in range(passes):
        model.encode(image)
    return (time.perf_counter() - start) / passes


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def in_worker(start: Callable[..., Any], passes: int, threads: int) -> tuple[float, float]:
    """Seconds per pass and peak RSS (GiB) of ``encode_s`` in the one worker of a cluster ``start`` makes.

    Each cluster is made and closed on its own, this process's environment restored after it: a
    nanny leaves its exports in the environment of the process that made it.
    """
    from distributed import Client

    with mock.patch.dict(os.environ), start(**OPTIONS) as cluster, Client(cluster) as client:
        seconds = client.submit(encode_s, passes, threads, pure=False).result()
        return seconds, client.submit(peak_rss_gib, pure=False).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from distributed import LocalCluster

    from flows.cluster import start_cluster

    threads = os.cpu_count() or 1
    starts = {"dask": LocalCluster, "samatlas": functools.partial(start_cluster, "distributed.LocalCluster")}
    best = {"process": float("inf"), "dask": float("inf"), "samatlas": float("inf")}
    peak: dict[str, float] = {}
    for round_ in range(args.rounds):
        best["process"] = min(best["process"], encode_s(args.passes, threads))
        for name, start in starts.items():
            seconds, rss = in_worker(start, args.passes, threads)
            best[name], peak[name] = min(best[name], seconds), round(max(peak.get(name, 0.0), rss), 2)
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v:.3f} s" for k, v in best.items()), file=sys.stderr)
    ratios = {f"{name}_over_process": round(best[name] / best["process"], 3) for name in starts}
    print(f"LiteMedSAM encode, {threads} threads, best of {args.rounds} rounds of {args.passes} passes:")
    for name, seconds in best.items():
        ratio = "" if name == "process" else f" = {seconds / best['process']:.2f} x process, peak RSS {peak[name]} GiB"
        print(f"  {name:9} {seconds:.3f} s/pass{ratio}")
    print(json.dumps({"threads": threads, **{f"{k}_s": round(v, 3) for k, v in best.items()}, **ratios,
                      "peak_rss_gib": peak}))


if __name__ == "__main__":
    main()
