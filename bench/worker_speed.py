"""Measurement (not a test): the model's speed inside a Dask worker against the same code in this process.

Evaluate's units run in Dask worker processes, so the encoder speed a run sees is the worker's. Two of
Dask's defaults slow a worker that runs a network on all of its cores (``flows.cluster.model_worker_settings``
says why); this measures LiteMedSAM's ``encode`` (the runtime samatlas picks: ONNX Runtime on a CPU)
on one random uint8 256x256x3 image (its content does not change the encoder's work), in three places
built once and warmed up:

``process``     in this process, on the cores' thread count (the baseline);
``dask``        in the one worker of a local cluster with Dask's defaults;
``samatlas``    in the one worker of a local cluster started by ``flows.cluster.start_cluster``.

The passes are interleaved one by one (process, dask, samatlas, process, ...), never two at once, so a
host whose speed drifts within minutes slows every variant alike: timed in separate rounds, the same
worker measured anywhere from 1.0x to 1.2x the process. Each figure is the median pass (the fastest
beside it). Prints the figures, then ONE JSON line with the median seconds per pass, each worker's
ratio of medians over the process, the ratio of the fastest passes, and each worker's peak RSS.

    python bench/worker_speed.py [--passes 30]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OPTIONS = {"n_workers": 1, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1", "dashboard_address": None}
IMAGE_SEED = 0


def build(threads: int) -> None:
    """Build LiteMedSAM in this process (once: ``load_model`` caches it) and warm it up."""
    import torch

    torch.set_num_threads(threads)  # before the model is built: its ONNX Runtime sessions take it
    for _ in range(3):
        one_pass()


def one_pass() -> float:
    """Seconds of one ``encode`` of the cached LiteMedSAM on the random image."""
    import numpy as np

    from tasks.models import load_model

    model = load_model("litemedsam")
    image = np.random.default_rng(IMAGE_SEED).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    start = time.perf_counter()
    model.encode(image)
    return time.perf_counter() - start


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def started(stack: ExitStack, start: Callable[..., Any], threads: int) -> Any:
    """A client of a one-worker cluster that ``start`` makes, its model built. This process's
    environment is restored once the cluster is made: a nanny leaves its exports in the environment
    of the process that made it, which the next cluster's nanny would take over its configuration."""
    from distributed import Client

    with mock.patch.dict(os.environ):
        cluster = stack.enter_context(start(**OPTIONS))
    client = stack.enter_context(Client(cluster))
    client.submit(build, threads, pure=False).result()
    return client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=30, help="passes per variant, interleaved")
    args = parser.parse_args()
    from distributed import LocalCluster

    from flows.cluster import start_cluster

    threads = os.cpu_count() or 1
    starts = {"dask": LocalCluster, "samatlas": functools.partial(start_cluster, "distributed.LocalCluster")}
    seconds: dict[str, list[float]] = {"process": [], **{name: [] for name in starts}}
    build(threads)
    with ExitStack() as stack:
        clients = {name: started(stack, start, threads) for name, start in starts.items()}
        for i in range(args.passes):
            seconds["process"].append(one_pass())
            for name, client in clients.items():
                seconds[name].append(client.submit(one_pass, pure=False).result())
            if (i + 1) % 10 == 0:
                print(f"{i + 1}/{args.passes} passes each", file=sys.stderr)
        peak = {name: round(client.submit(peak_rss_gib, pure=False).result(), 2) for name, client in clients.items()}
    median = {name: statistics.median(s) for name, s in seconds.items()}
    fastest = {name: min(s) for name, s in seconds.items()}
    print(f"LiteMedSAM encode, {threads} threads, {args.passes} interleaved passes each (median, fastest):")
    for name in seconds:
        ratio = "" if name == "process" else (f" = {median[name] / median['process']:.3f} x process "
                                               f"(fastest {fastest[name] / fastest['process']:.3f} x), peak RSS {peak[name]} GiB")
        print(f"  {name:9} {median[name]:.3f} s/pass, fastest {fastest[name]:.3f}{ratio}")
    print(json.dumps({
        "threads": threads, "passes": args.passes, **{f"{k}_s": round(v, 3) for k, v in median.items()},
        **{f"{name}_over_process": round(median[name] / median["process"], 3) for name in starts},
        **{f"{name}_fastest_over_process": round(fastest[name] / fastest["process"], 3) for name in starts},
        "peak_rss_gib": peak,
    }))


if __name__ == "__main__":
    main()
