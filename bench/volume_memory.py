"""Measurement (not a test): peak memory of the bounded embedding cache against holding every embedding.

A volumetric unit walks a case's slices and comes back to some of them, so it keeps their embeddings
(``tasks.embedding_cache.EmbeddingCache``). On a synthetic 512x512x600 volume (a CT's depth; its
slices are made on demand, one at a time, as a unit reads them from the store) with a stand-in model
whose ``encode`` costs nothing and returns a LiteMedSAM-sized embedding (float32 (1, 256, 64, 64),
4 MiB, every page written), each variant walks all 600 slices in order, then revisits 100 of them
(slices 300..349 up, then 299..250 down: a click on slice 300 re-propagated both ways, as a
refinement does):

``cache``      the default bound, ``RAM_SLOTS`` embeddings in memory, the rest spilled to local disk;
``unbounded``  ``ram_slots=600``: every embedding stays in memory (the baseline).

Each variant runs in a fresh child process (this script with ``--child``), which reports its peak
RSS (``ru_maxrss``, KiB on Linux) before and after the walk, the embeddings it encoded (600 in both:
a revisit never re-encodes), the spill folder's size and a check that every revisit returned the
slice's own embedding. Prints the figures, then ONE JSON line: both peaks in MiB, their ratio
(unbounded / cache), the encoder calls and ``RAM_SLOTS``.

    make bench     (or: python bench/volume_memory.py)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tasks.embedding_cache import RAM_SLOTS, EmbeddingCache  # noqa: E402
from tasks.models.base import Embedding, Geometry  # noqa: E402

SHAPE = (600, 512, 512)  # (z, y, x)
EMBEDDING = (1, 256, 64, 64)  # LiteMedSAM's image embedding: 4 MiB of float32
INPUT_SIZE = 256
REVISITS = [*range(300, 350), *range(299, 249, -1)]
MIB = 1024 * 1024


class FreeEncoder:
    """A stand-in model: ``encode`` returns a LiteMedSAM-sized embedding filled with the slice's mean
    (so a revisit can be checked), at the cost of writing 4 MiB; it has no decoder."""

    def encode(self, image: np.ndarray) -> Embedding:
        import torch

        return Embedding(Geometry.longest_side(*image.shape[:2], INPUT_SIZE),
                         torch.full(EMBEDDING, float(image.mean()), dtype=torch.float32))


def synthetic_slice(z: int) -> np.ndarray:
    """Slice ``z`` of the synthetic volume as the (H, W, 3) uint8 image a unit hands the encoder: every
    pixel holds ``z % 256``, so the embedding identifies its slice."""
    return np.full((*SHAPE[1:], 3), z % 256, np.uint8)


def peak_rss_mib() -> float:
    """This process's peak resident set so far (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_mib(folder: Path) -> float:
    """The size of the files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / MIB


def child(ram_slots: int) -> None:
    """One variant, in this (fresh) process: walk, revisit, print one JSON line of its figures."""
    import torch

    torch.set_num_threads(1)
    FreeEncoder().encode(synthetic_slice(0))  # torch's lazy start-up counts in the baseline, not the walk
    before = peak_rss_mib()
    with EmbeddingCache(FreeEncoder(), synthetic_slice, ram_slots=ram_slots) as cache:
        for z in range(SHAPE[0]):
            cache.get(z)
        right = all(float(cache.get(z).features[0, 0, 0, 0]) == z % 256 for z in REVISITS)
        spill_mib = folder_mib(Path(tempfile.gettempdir()))  # the child's private TMPDIR: the spill folder only
        figures = {"ram_slots": ram_slots, "baseline_rss_mib": round(before, 1), "peak_rss_mib": round(peak_rss_mib(), 1),
                   "encoder_calls": cache.encoder_calls, "peak_ram_slots": cache.peak_ram_slots,
                   "spill_mib": round(spill_mib, 1), "revisits_right": right}
    print(json.dumps(figures))


def run_variant(ram_slots: int) -> dict:
    """Run one variant in a fresh child process, with a private TMPDIR for the cache's spill folder,
    and return its figures."""
    with tempfile.TemporaryDirectory(prefix="samatlas-bench-") as tmp:
        done = subprocess.run([sys.executable, __file__, "--child", str(ram_slots)], env={**os.environ, "TMPDIR": tmp},
                              capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"variant ram_slots={ram_slots} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    cache, unbounded = run_variant(RAM_SLOTS), run_variant(SHAPE[0])
    for name, v in (("cache", cache), ("unbounded", unbounded)):
        if v["encoder_calls"] != SHAPE[0] or not v["revisits_right"]:
            sys.exit(f"{name}: {v['encoder_calls']} encoder calls (expected {SHAPE[0]}), revisits right: {v['revisits_right']}")
    ratio = unbounded["peak_rss_mib"] / cache["peak_rss_mib"]
    growth = (unbounded["peak_rss_mib"] - unbounded["baseline_rss_mib"]) / (cache["peak_rss_mib"] - cache["baseline_rss_mib"])
    embedding_mib = np.prod(EMBEDDING) * 4 / MIB
    print(f"synthetic {SHAPE[2]}x{SHAPE[1]}x{SHAPE[0]} volume, {embedding_mib:.0f} MiB embeddings; "
          f"walk {SHAPE[0]} slices, then revisit {len(REVISITS)}")
    for name, v in (("cache", cache), ("unbounded", unbounded)):
        print(f"  {name:9}  ram_slots={v['ram_slots']:3}  peak RSS {v['peak_rss_mib']:7.1f} MiB "
              f"(+{v['peak_rss_mib'] - v['baseline_rss_mib']:.1f} over {v['baseline_rss_mib']:.1f} after start-up)  "
              f"encoded {v['encoder_calls']}  peak slots in memory {v['peak_ram_slots']}  spill folder {v['spill_mib']:.1f} MiB")
    print(f"  unbounded / cache: peak RSS {ratio:.2f} x, growth over start-up {growth:.1f} x")
    print(json.dumps({"bench": "volume_memory", "cache_peak_rss_mib": cache["peak_rss_mib"],
                      "unbounded_peak_rss_mib": unbounded["peak_rss_mib"], "rss_ratio": round(ratio, 2),
                      "growth_ratio": round(growth, 1), "spill_mib": cache["spill_mib"],
                      "encoder_calls": cache["encoder_calls"], "ram_slots": RAM_SLOTS}))


if __name__ == "__main__":
    main()
