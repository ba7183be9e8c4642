"""Measurement (not a test): ingest's throughput against a bare SimpleITK read, its scaling over Dask
workers, and its peak memory on one large CT.

Synthetic CT volumes (int16: air at -1024 around an elliptic body of noisy soft tissue, the noise
making the bytes as hard to compress as a real scan's) with a uint8 label of a few spherical lesions
each, written alternately as gzip NIfTI (``.nii.gz``, as MSD ships) and gzip NRRD (as the pyradiomics
sample ships), are ingested as ``sample-radiomics`` chest CTs (CT lung window, lesion = 1). MB are
the source voxel bytes (image + label) throughout; every store is a fresh folder, so no case is
replaced.

``ingest_vs_read``     ``--volumes`` cases of 512x512x``--depth``: a bare ``sitk.ReadImage`` of every
                       image and label file against ``ingest_case`` on the same cases in this process
                       (checksums, header checks, read, validation, reorientation, the Zarr write and
                       the objects), MB/s each and their ratio; beside them, as the floor, a plain
                       zarr write of the arrays read (same chunks, same codec, as the store
                       writes them) and read / (read + that write), the best ingest can reach;
``two_worker_speedup`` ``ingest_case`` on the same cases fanned out over a Dask ``LocalCluster`` of 1,
                       then 2 single-threaded worker processes (as ``flows.cluster.make_task_runner``
                       builds a local cluster), timed from the first submit to the last result after
                       the workers have imported the ingest code; also the workers' CPU seconds;
``peak_rss_ratio``     a fresh child process (this script with ``--child``) ingests a small case (its
                       imports and thread pools warm), then ONE 512x512x``--big-depth`` CT with its
                       label; its peak RSS during that ingest (the kernel's high-water mark, reset
                       before it; ``ru_maxrss`` is shown too) minus its RSS before it, divided by the
                       image's size in memory (int16: 300 MiB at 600 slices).

Prints the figures, then ONE JSON line: ``ingest_vs_read``, ``two_worker_speedup``,
``peak_rss_ratio`` and the seconds and MB behind them.

    make bench     (or: python bench/ingest.py [--volumes 8] [--depth 100] [--big-depth 600])
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from catalog.registry import get_card  # noqa: E402
from records.cards import CaseFiles  # noqa: E402
from tasks.ingest_case import ingest_case  # noqa: E402
from tasks.preflight import read_header  # noqa: E402

DATASET, SUBSET = "sample-radiomics", "chest-ct"
SIDE = 512
SPACING = (0.7, 0.7, 2.5)  # x, y, z in mm, as ITK orders them
FORMATS = (".nii.gz", ".nrrd")  # both gzip-compressed, as the releases ship them
MB = 1e6
MIB = 1024 * 1024


def synthetic_ct(depth: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A (z, y, x) int16 CT and its uint8 label: air (-1024) around an elliptic body of soft tissue
    (40 HU, noise sd 20), and four spherical lesions (label 1) inside the body."""
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:SIDE, :SIDE]
    body = ((yy - SIDE / 2) / (0.42 * SIDE)) ** 2 + ((xx - SIDE / 2) / (0.47 * SIDE)) ** 2 < 1
    image = np.full((depth, SIDE, SIDE), -1024, np.int16)
    for z in range(depth):  # slice by slice: a 600-slice float64 noise field would cost 1.2 GB
        image[z][body] = rng.normal(40, 20, int(body.sum())).astype(np.int16)
    label = np.zeros(image.shape, np.uint8)
    zz = np.arange(depth)[:, None, None]
    for _ in range(4):
        radius = int(rng.integers(5, 20))
        cz = int(rng.integers(radius, max(radius + 1, depth - radius)))
        cy, cx = (int(c) for c in rng.integers(150, SIDE - 150, 2))
        span = slice(max(cz - radius, 0), cz + radius + 1)
        label[span][(zz[span] - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = 1
    return image, label


def write_case_files(folder: Path, case_id: str, depth: int, seed: int, suffix: str) -> CaseFiles:
    """Write one synthetic case's image and label files (gzip) and return its CaseFiles."""
    image, label = synthetic_ct(depth, seed)
    paths = []
    for role, array in (("image", image), ("label", label)):
        itk = sitk.GetImageFromArray(array)
        itk.SetSpacing(SPACING)
        path = folder / f"{case_id}_{role}{suffix}"
        sitk.WriteImage(itk, str(path), useCompression=True)
        paths.append(path)
    return CaseFiles(case_id, (paths[0],), paths[1], subset=SUBSET)


def voxel_bytes(case: CaseFiles) -> int:
    """The source voxel bytes of a case (image and label), as their file headers declare them."""
    return sum(read_header(path).payload for path in case.files)


def time_read(cases: list[CaseFiles]) -> float:
    """Seconds of a bare ``sitk.ReadImage`` of every file of ``cases``."""
    start = time.perf_counter()
    for case in cases:
        for path in case.files:
            sitk.ReadImage(str(path))
    return time.perf_counter() - start


def time_zarr_write(cases: list[CaseFiles], store: Path) -> float:
    """Seconds of a plain zarr write of every case's arrays (read beforehand, untimed): image
    ``(1, z, y, x)`` and label, one slice per chunk, the store's codec, as the store writes them."""
    import zarr

    from tasks.store import CHUNK_CODECS

    seconds = 0.0
    for case in cases:
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(case.images[0])))[None]
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(case.label)))
        start = time.perf_counter()
        group = zarr.open_group(str(store / case.case_id), mode="w", zarr_format=3)
        group.create_array("image", shape=image.shape, dtype=image.dtype, chunks=(1, 1, SIDE, SIDE),
                           compressors=CHUNK_CODECS)[...] = image
        group.create_array("mask", shape=label.shape, dtype=label.dtype, chunks=(1, SIDE, SIDE),
                           compressors=CHUNK_CODECS)[...] = label
        seconds += time.perf_counter() - start
    return seconds


def time_ingest(cases: list[CaseFiles], store: Path) -> float:
    """Seconds of ``ingest_case`` on every case in this process (into a fresh store)."""
    card = get_card(DATASET)
    start = time.perf_counter()
    for case in cases:
        outcome = ingest_case(card, case, store, "bench")
        if not outcome.ok:
            sys.exit(f"{case.case_id}: quarantined: {outcome.case.reason}")
    return time.perf_counter() - start


def _ingest_remote(case: CaseFiles, store: str) -> tuple[str, str | None, float]:
    """One case's ingest in a Dask worker: its id, the quarantine reason (None if ok) and the CPU
    seconds of the worker's process it took."""
    start = time.process_time()
    outcome = ingest_case(get_card(DATASET), case, Path(store), "bench")
    return case.case_id, outcome.case.reason, time.process_time() - start


def _warm_worker() -> None:
    """Import what an ingest needs, so the timed run starts from warm workers."""
    import tasks.ingest_case  # noqa: F401
    import tasks.store  # noqa: F401

    get_card(DATASET)


def time_dask(cases: list[CaseFiles], store: Path, workers: int) -> tuple[float, float]:
    """Wall seconds of ingesting ``cases`` over ``workers`` single-threaded Dask worker processes,
    and the CPU seconds the workers spent in ``ingest_case``."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        client.run(_warm_worker)
        start = time.perf_counter()
        futures = [client.submit(_ingest_remote, case, str(store), pure=False) for case in cases]
        results = client.gather(futures)
        seconds = time.perf_counter() - start
    for case_id, reason, _ in results:
        if reason is not None:
            sys.exit(f"{case_id}: quarantined in a worker: {reason}")
    return seconds, sum(cpu for _, _, cpu in results)


def _status_mib(field: str) -> float:
    """A ``/proc/self/status`` memory figure of this process (``VmRSS``, ``VmHWM``) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(image: Path, label: Path, store: Path) -> None:
    """Ingest one case in this (fresh) process; print one JSON line of its memory figures.

    A small case is ingested first, so the lazy imports and thread pools of an ingest are in the
    baseline. The peak is then measured from there: ``ru_maxrss`` of a child started by ``exec``
    carries its parent's high-water mark, so the kernel's mark (``VmHWM``) is reset (writing 5 to
    ``/proc/self/clear_refs``) and read after the ingest; ``getrusage``'s figure is reported beside it.
    """
    card = get_card(DATASET)
    warm = write_case_files(image.parent, "warm", 4, 0, ".nrrd")
    ingest_case(card, warm, store, "bench")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    baseline = _status_mib("VmRSS")
    start = time.perf_counter()
    outcome = ingest_case(card, CaseFiles("big", (image,), label, subset=SUBSET), store, "bench")
    seconds = time.perf_counter() - start
    if not outcome.ok:
        sys.exit(f"big: quarantined: {outcome.case.reason}")
    print(json.dumps({"baseline_rss_mib": round(baseline, 1), "peak_rss_mib": round(_status_mib("VmHWM"), 1),
                      "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "ingest_s": round(seconds, 2), "shape": outcome.case.shape}))


def run_child(case: CaseFiles, store: Path) -> dict:
    """Ingest ``case`` in a fresh child process and return its figures."""
    done = subprocess.run([sys.executable, __file__, "--child", str(case.images[0]), str(case.label), str(store)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"the peak-RSS child failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=8, help="synthetic cases for the throughput figures")
    parser.add_argument("--depth", type=int, default=100, help="slices of each of those cases")
    parser.add_argument("--big-depth", type=int, default=600, help="slices of the peak-RSS case")
    parser.add_argument("--child", nargs=3, type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(*args.child)
        return

    with tempfile.TemporaryDirectory(prefix="samatlas-bench-ingest-") as tmp:
        work = Path(tmp)
        (work / "files").mkdir()
        cases = [write_case_files(work / "files", f"ct{i}", args.depth, i, FORMATS[i % len(FORMATS)])
                 for i in range(args.volumes)]
        mb = sum(voxel_bytes(c) for c in cases) / MB
        time_read(cases)  # warms the page cache: every variant reads the files from memory
        read_s = time_read(cases)
        write_s = time_zarr_write(cases, work / "plain")
        ingest_s = time_ingest(cases, work / "store-1")
        dask_1_s, cpu_1 = time_dask(cases, work / "store-dask-1", 1)
        dask_2_s, cpu_2 = time_dask(cases, work / "store-dask-2", 2)
        shutil.rmtree(work / "plain")
        big = write_case_files(work / "files", "big", args.big_depth, 99, ".nrrd")
        peak = run_child(big, work / "store-big")

    image_mib = args.big_depth * SIDE * SIDE * 2 / MIB
    growth = peak["peak_rss_mib"] - peak["baseline_rss_mib"]
    figures = {
        "volumes": args.volumes, "shape": [args.depth, SIDE, SIDE], "source_mb": round(mb, 1), "cpus": os.cpu_count(),
        "read_s": round(read_s, 3), "ingest_s": round(ingest_s, 3), "zarr_write_s": round(write_s, 3),
        "read_mb_s": round(mb / read_s, 1), "ingest_mb_s": round(mb / ingest_s, 1),
        "ingest_vs_read": round(read_s / ingest_s, 3), "floor_vs_read": round(read_s / (read_s + write_s), 3),
        "dask_1_worker_s": round(dask_1_s, 3), "dask_2_workers_s": round(dask_2_s, 3),
        "dask_1_worker_cpu_s": round(cpu_1, 2), "dask_2_workers_cpu_s": round(cpu_2, 2),
        "two_worker_speedup": round(dask_1_s / dask_2_s, 3),
        "big_shape": peak["shape"], "big_image_mib": round(image_mib, 1), "big_ingest_s": peak["ingest_s"],
        "big_baseline_rss_mib": peak["baseline_rss_mib"], "big_peak_rss_mib": peak["peak_rss_mib"],
        "peak_rss_ratio": round(growth / image_mib, 3),
    }
    print(f"{args.volumes} synthetic CTs of {SIDE}x{SIDE}x{args.depth} (int16 + uint8 label, gzip NIfTI/NRRD), "
          f"{mb:.0f} MB of source voxels, {os.cpu_count()} CPUs")
    print(f"  bare sitk.ReadImage   {read_s:7.2f} s  {mb / read_s:7.1f} MB/s")
    print(f"  ingest_case           {ingest_s:7.2f} s  {mb / ingest_s:7.1f} MB/s  = {figures['ingest_vs_read']:.2f} x read's MB/s")
    print(f"  plain zarr write      {write_s:7.2f} s  (read + write floor: {figures['floor_vs_read']:.2f} x read's MB/s)")
    print(f"  Dask, 1 worker        {dask_1_s:7.2f} s  ({cpu_1:.1f} CPU s in ingest_case)")
    print(f"  Dask, 2 workers       {dask_2_s:7.2f} s  ({cpu_2:.1f} CPU s in ingest_case)  "
          f"speed-up {figures['two_worker_speedup']:.2f} x")
    print(f"  one {SIDE}x{SIDE}x{args.big_depth} CT ({image_mib:.0f} MiB int16) in a fresh process: peak RSS "
          f"{peak['peak_rss_mib']:.0f} MiB, {peak['baseline_rss_mib']:.0f} after imports: +{growth:.0f} MiB "
          f"= {figures['peak_rss_ratio']:.2f} x the image ({peak['ingest_s']:.1f} s)")
    print(json.dumps({"bench": "ingest", **figures}))


if __name__ == "__main__":
    main()
