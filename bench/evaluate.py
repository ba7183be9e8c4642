"""Measurement (not a test): evaluate's cost on a CPU against the encoder alone, on one case.

The encoder is the one cost that cannot go (one pass per slice); everything else evaluate does
should be small beside it. On one ingested case of ``sample-radiomics`` (default ``lung2``, a
chest CT whose lesion spans 11 slices), with LiteMedSAM and three protocols (medsam-box,
mazurowski with 3 clicks, sammed2d), this runs in one process:

``encoder``  bare encoder passes over the slices evaluate plans (the floor), slices read beforehand;
             it and ``unit`` alternate ``--repeats`` rounds (default 3), each figure the fastest of its
             rounds (this machine's speed drifts by up to half within minutes);
``unit``     ``run_unit`` on the case's planned objects under the three protocols (every slice
             encoded once, all its prompts decoded on that embedding, in lockstep rounds decoded in
             batches where the model batches (on a GPU), rows scored); with its prompts, decoder passes
             and the seconds inside the mask decoder (``unit_decoder_s``);
``other``    the same on the other decoding path (the same rows): batched where the model decodes
             one prompt per call by default (on a CPU), one call per prompt where it batches;
``efficiency`` the encoder's FLOPs per slice (``torch.utils.flop_counter``) over its seconds per
             slice, against this machine's dense fp32 matmul FLOP/s measured here, same threads;
``naive``    the per-prompt loop a script over ``SamPredictor`` would be (the slice re-encoded before
             every decoder call), on the objects of ``--naive-slices`` slices only (it is slow)
             and scaled per decoder call, compared with ``unit`` per decoder call;
``cli``      the wall time of a ``samatlas evaluate --workers 1`` subprocess on the same case with a
             fresh copy of the catalog: its Prefect server, Dask cluster, worker model load and
             commits included (``cli - unit`` is that fixed cost), and the CPU seconds of all its
             processes, which a busy machine moves less than the wall time; and its cold start: when
             its first unit began and the CPU seconds its command, Prefect server and Dask worker
             had used by then (``bench/process_cpu.py``), over the cores the bound on that start;
``large``    the same ``cli`` against bare encoder passes on a long run: ``--large-slices`` (default
             100) slices of the MNI152 template (``sample-mni152``, WM and GM) under medsam-box,
             where the fixed cost is spread over many slices (``--large-slices 0`` skips it);
``pipeline`` ``bench/pipeline.py``'s stand-in model (1 ms encoder and decoder) through ``run_unit`` on
             the chest CTs and the template: object-prompts/s of everything but the model, per core
             (the fastest of its three rounds).

The case is ingested once into ``--workdir`` (default ``<data root>/bench``), which the next run
reuses. Prints the figures, then ONE JSON line: ``unit_over_encoder``, ``cli_over_encoder``,
``cli_over_encoder_large``, ``naive_speedup``, ``encoder_efficiency``, ``pipeline_prompts_per_s`` and the seconds behind them (CPU seconds too: the wall time moves on a busy machine).

    make bench     (or: python bench/evaluate.py [--case lung2] [--naive-slices 2] [--workdir DIR])
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from process_cpu import ProcessTreeCpu  # noqa: E402 (bench/, this script's folder)

from catalog.query import connect  # noqa: E402
from flows.evaluate import build_protocols, model_identity, planned_specs  # noqa: E402
from flows.plan import WorkUnit, plan_units, unit_objects  # noqa: E402
from records.units import PlannedObject  # noqa: E402
from tasks.evaluate_unit import PlannedSpec, RunStamp, run_unit, slice_rgb  # noqa: E402
from tasks.locations import as_location  # noqa: E402
from tasks.models import load_model  # noqa: E402
from tasks.models.base import Embedding, Prepared, Prompt, SegmentationModel  # noqa: E402
from tasks.settings import get_settings  # noqa: E402
from tasks.store import StoredCase  # noqa: E402

DATASET, SUBSET = "sample-radiomics", "chest-ct"
LARGE_DATASET, LARGE_CASE, LARGE_PROTOCOL = "sample-mni152", "mni152-2009a", "medsam-box"
MODEL = "litemedsam"
PROTOCOLS, OPTIONS = ["medsam-box", "mazurowski", "sammed2d"], {"clicks": 3}


class ReEncoding:
    """``model`` as a per-prompt loop uses it: every decoder call first encodes its slice again.

    ``encode`` only keeps the image (and the geometry), so each decoder call costs exactly one
    encoder pass and one decoder pass, as ``SamPredictor.set_image`` + ``predict`` per prompt does.
    """

    def __init__(self, model: SegmentationModel) -> None:
        self.model = model
        self.image: np.ndarray | None = None

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def encode(self, image: np.ndarray) -> Embedding:
        self.image = image
        return Embedding(self.model.geometry(*image.shape[:2]), None)

    def prepare(self, image: np.ndarray) -> Prepared:
        """The image itself: the model's own preparation runs in each decoder call's encode."""
        return Prepared(image, self.model.geometry(*image.shape[:2]))

    def encode_prepared(self, prepared: Sequence[Prepared]) -> list[Embedding]:
        return [self.encode(p.input) for p in prepared]

    def decode(self, embedding: Embedding, prompt: Prompt, multimask: bool = False):
        return self.model.decode(self.model.encode(self.image), prompt, multimask)

    def decode_with_mask(self, embedding: Embedding, prompt: Prompt, multimask: bool = False, mask_input=None):
        return self.model.decode_with_mask(self.model.encode(self.image), prompt, multimask, mask_input)


@contextmanager
def timed_passes(module) -> Iterator[list[float]]:
    """The seconds of each forward pass of a torch module in the block (their count is its passes)."""
    passes: list[float] = []
    started: list[float] = []
    before = module.register_forward_pre_hook(lambda *args: started.append(time.perf_counter()))
    after = module.register_forward_hook(lambda *args: passes.append(time.perf_counter() - started.pop()))
    try:
        yield passes
    finally:
        before.remove()
        after.remove()


def root_env(root: Path, downloads: Path, prefect_home: Path) -> dict[str, str]:
    """The environment of a samatlas subprocess on data root ``root`` running this tree's code."""
    cache = root / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / "downloads").exists():
        (cache / "downloads").symlink_to(downloads, target_is_directory=True)
    env = {**os.environ, "SAMATLAS_DATA_ROOT": str(root), "SAMATLAS_CACHE_DIR": str(cache),
           "PYTHONPATH": str(REPO), "PREFECT_HOME": str(prefect_home),
           # the encoder export this process made (once per machine, as a user's first run makes it)
           "SAMATLAS_MODEL_CACHE": str(get_settings().model_cache_root.resolve())}
    env.pop("PREFECT_API_URL", None)  # each command starts its own temporary server, as a user's does
    return env


@dataclass(frozen=True)
class ColdStart:
    """When an ``evaluate``'s first unit began (seconds after its start, as it reports it) and the CPU
    seconds each of its processes had used by then (:mod:`process_cpu`'s roles)."""

    first_unit_s: float
    cpu_s: dict[str, float]

    @property
    def spent_s(self) -> float:
        """CPU seconds of all its processes before the first unit."""
        return sum(self.cpu_s.values())

    def figures(self, prefix: str) -> dict[str, object]:
        """The JSON figures: the first unit's time, the CPU seconds before it by process, that CPU
        over this machine's cores (how soon the first unit could begin were the cores never idle)
        and the core-seconds left idle before it."""
        cores = os.cpu_count() or 1
        return {f"{prefix}first_unit_s": round(self.first_unit_s, 2),
                f"{prefix}startup_cpu_s": {k: round(v, 2) for k, v in self.cpu_s.items()},
                f"{prefix}startup_cpu_over_cores_s": round(self.spent_s / cores, 2),
                f"{prefix}startup_idle_core_s": round(cores * self.first_unit_s - self.spent_s, 2)}


@dataclass(frozen=True)
class Timed:
    """A command's wall seconds, and the CPU seconds of it and the processes it waited for (its
    Prefect server and Dask workers): the CPU figure moves less than the wall on a busy machine.
    An ``evaluate`` has its cold start too."""

    wall_s: float
    cpu_s: float
    cold_start: ColdStart | None = None

    def startup_figures(self, prefix: str) -> dict[str, object]:
        """The cold start's JSON figures (none for a command that reports no first unit)."""
        return {} if self.cold_start is None else self.cold_start.figures(prefix)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


FIRST_UNIT = re.compile(r"the first unit began ([0-9.]+) s after the command started")


def samatlas(env: dict[str, str], *args: str) -> Timed:
    """Run ``samatlas ARGS`` (the venv's console script) and time it, its process tree's CPU sampled
    (:class:`process_cpu.ProcessTreeCpu`) to split an ``evaluate``'s cold start. Fails loudly."""
    start, cpu = time.perf_counter(), _children_cpu()
    command = subprocess.Popen([str(Path(sys.executable).with_name("samatlas")), *args], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = ProcessTreeCpu(command.pid)
    created = sampler.root.create_time()
    stdout, stderr = command.communicate()
    sampler.stop()
    wall_s, cpu_s = time.perf_counter() - start, _children_cpu() - cpu
    if command.returncode != 0:
        sys.exit(f"samatlas {' '.join(args)} failed ({command.returncode}):\n{stdout}{stderr}")
    found = FIRST_UNIT.search(" ".join(stderr.split()))  # the summary wraps at the terminal's width
    if found is None:
        return Timed(wall_s, cpu_s)
    first_unit_s = float(found.group(1))
    return Timed(wall_s, cpu_s, ColdStart(first_unit_s, sampler.at(created + first_unit_s)))


def ingested(workdir: Path, downloads: Path) -> Path:
    """A data root with the chest CTs of sample-radiomics ingested (once; reused after)."""
    root = workdir / "ingested"
    if not (root / "catalog" / "objects").exists():
        print(f"ingesting {DATASET} --subset {SUBSET} into {root} (once)", file=sys.stderr, flush=True)
        samatlas(root_env(root, downloads, workdir / "prefect"), "ingest", DATASET, "--subset", SUBSET)
    return root


def large_ingested(root: Path, workdir: Path, downloads: Path) -> None:
    """``root`` with the MNI152 template ingested beside the chest CTs (once; reused after)."""
    cases = connect(root / "catalog").execute("SELECT count(*) FROM cases WHERE dataset = ? AND status = 'ok'",
                                              [LARGE_DATASET]).fetchone()[0]
    if not cases:
        print(f"ingesting {LARGE_DATASET} into {root} (once)", file=sys.stderr, flush=True)
        samatlas(root_env(root, downloads, workdir / "prefect"), "ingest", LARGE_DATASET)


def case_units(root: Path, case: str, sha256: str, specs: dict[str, PlannedSpec], dataset: str = DATASET,
               max_slices: int = 0) -> list[WorkUnit]:
    """The units evaluate plans for ``dataset/case`` (at most ``max_slices`` slices, evenly spread; 0: all)."""
    units = plan_units(root / "catalog", MODEL, sha256, [p.spec for p in specs.values()], [dataset], [case],
                       max_slices_per_case=max_slices).units
    if not units:
        sys.exit(f"{dataset}/{case}: nothing planned (not ingested, or no object large enough)")
    return units


def time_encoder(model: SegmentationModel, units: list[WorkUnit]) -> tuple[float, float, int]:
    """Wall and CPU seconds of bare encoder passes over the units' slices (read first), and the pass count."""
    images = [slice_rgb(StoredCase(as_location(u.zarr_path)), z) for u in units for z in u.slices]
    model.encode(images[0])  # warm-up (lazy initialisation), as the other variants get a warm model too
    start, cpu = time.perf_counter(), time.process_time()
    for image in images:
        model.encode(image)
    return time.perf_counter() - start, time.process_time() - cpu, len(images)


@dataclass(frozen=True)
class Efficiency:
    """The encoder's arithmetic against the machine's: FLOPs per slice, its GFLOP/s, matmul GFLOP/s."""

    flops: int
    encoder_gflops: float
    matmul_gflops: float

    @property
    def ratio(self) -> float:
        return self.encoder_gflops / self.matmul_gflops


def encoder_efficiency(model: SegmentationModel, image: np.ndarray, seconds_per_slice: float) -> Efficiency:
    """FLOPs of one encoder pass over ``seconds_per_slice``, against the fp32 matmul speed measured now
    (``bench/encoder_speed.py``'s counter and matmul, which also tries faster variants)."""
    from encoder_speed import MATMUL_N, count_flops, matmul_seconds

    flops = count_flops(model, image)
    return Efficiency(flops, flops / seconds_per_slice / 1e9, 2 * MATMUL_N**3 / matmul_seconds() / 1e9)


@dataclass(frozen=True)
class UnitTiming:
    """``run_unit`` over some work: seconds, prompts decoded, mask decoder passes and their seconds,
    result rows."""

    seconds: float
    prompts: int
    passes: int
    rows: int
    decoder_s: float


def time_unit(model, work: list[tuple[WorkUnit, list[PlannedObject]]], specs: dict[str, PlannedSpec],
              batched: bool | None = None) -> UnitTiming:
    """``run_unit`` over ``work``, its prompts in decoder batches (``batched``), one decoder call each
    (``batched=False``) or as the model does by default (``None``)."""
    stamp = RunStamp("bench", "bench")
    rows = prompts = 0
    with timed_passes(model.mask_decoder) as passes:  # ReEncoding passes it on
        start = time.perf_counter()
        for unit, objects in work:
            done = run_unit(as_location(unit.zarr_path), unit.dataset, unit.case_id, objects, model, specs, stamp,
                            batched=batched)
            rows += len(done.rows)
            prompts += done.decoding.decoded
        seconds = time.perf_counter() - start
    return UnitTiming(seconds, prompts, len(passes), rows, sum(passes))


@dataclass(frozen=True)
class Rounds:
    """Bare encoder passes and ``run_unit`` timed in alternating rounds: the fastest of each (wall and
    CPU seconds, passes; timing and CPU seconds), and every round's wall seconds."""

    encoder: tuple[float, float, int]
    unit: UnitTiming
    unit_cpu_s: float
    encoder_s_all: list[float]
    unit_s_all: list[float]


def fastest_rounds(model: SegmentationModel, units: list[WorkUnit], work: list[tuple[WorkUnit, list[PlannedObject]]],
                   specs: dict[str, PlannedSpec], repeats: int) -> Rounds:
    """The encoder and the unit timed ``repeats`` times each, alternating, each figure the fastest of its
    rounds: on a shared machine whose speed drifts by half within minutes, the fastest round is the
    least disturbed one, and alternating keeps a slow minute from falling on one side only."""
    encoders, timings = [], []
    for _ in range(repeats):
        encoders.append(time_encoder(model, units))
        cpu = time.process_time()
        timing = time_unit(model, work, specs)
        timings.append((timing, time.process_time() - cpu))
    unit, unit_cpu_s = min(timings, key=lambda t: t[0].seconds)
    return Rounds(min(encoders), unit, unit_cpu_s, [e[0] for e in encoders], [t.seconds for t, _ in timings])


def naive_sample(work: list[tuple[WorkUnit, list[PlannedObject]]], n_slices: int) -> list[tuple[WorkUnit, list[PlannedObject]]]:
    """The objects of ``n_slices`` slices spread evenly over the case."""
    slices = sorted({o.slice_index for _, objects in work for o in objects})
    keep = {slices[i] for i in np.linspace(0, len(slices) - 1, min(n_slices, len(slices))).round().astype(int)}
    return [(u, [o for o in objects if o.slice_index in keep]) for u, objects in work]


def time_cli(workdir: Path, root: Path, downloads: Path, *args: str) -> Timed:
    """Wall seconds of ``samatlas evaluate --model MODEL --workers 1 ARGS`` on a fresh copy of the catalog."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix="cli-") as tmp:
        fresh = Path(tmp) / "samatlas-data"
        shutil.copytree(root / "catalog", fresh / "catalog")  # its cases rows point at root's store
        env = root_env(fresh, downloads, workdir / "prefect")
        env["SAMATLAS_CACHE_DIR"] = str(root / "cache")  # the checksum cache persists, as a user's does
        return samatlas(env, "evaluate", "--model", MODEL, "--workers", "1", *args)


def case_cli_args(case: str) -> list[str]:
    """The evaluate arguments of the small case: the case and the three protocols."""
    args = ["--case", case, "--clicks", str(OPTIONS["clicks"])]
    for name in PROTOCOLS:
        args += ["--protocol", name]
    return args


@dataclass(frozen=True)
class LargeTiming:
    """The long run: slices, bare encoder seconds over them, and the CLI's wall and CPU seconds."""

    slices: int
    encoder_s: float
    cli: Timed


def time_large(model: SegmentationModel, workdir: Path, root: Path, downloads: Path, sha256: str,
               n_slices: int) -> LargeTiming:
    """``samatlas evaluate`` on ``n_slices`` slices of the MNI152 template against bare encoder passes
    over the very slices it plans (the same ``--max-slices-per-case`` spread)."""
    large_ingested(root, workdir, downloads)
    specs = planned_specs(build_protocols([LARGE_PROTOCOL], {}))
    units = case_units(root, LARGE_CASE, sha256, specs, LARGE_DATASET, n_slices)
    encoder_s, _, passes = time_encoder(model, units)
    cli = time_cli(workdir, root, downloads, "--dataset", LARGE_DATASET, "--case", LARGE_CASE,
                   "--protocol", LARGE_PROTOCOL, "--max-slices-per-case", str(n_slices))
    return LargeTiming(passes, encoder_s, cli)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="lung2", help=f"a case of {DATASET}'s {SUBSET} subset")
    parser.add_argument("--naive-slices", type=int, default=2, help="slices the naive loop runs on (scaled per prompt)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the case is ingested (default <data root>/bench)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternating rounds of the bare encoder and run_unit (the fastest of each is kept)")
    parser.add_argument("--large-slices", type=int, default=100,
                        help=f"slices of {LARGE_DATASET} for the long CLI run (0: skip it)")
    args = parser.parse_args()
    settings = get_settings()
    workdir = (args.workdir or settings.data_root / "bench").resolve()
    downloads = Path(os.environ.get("SAMATLAS_TEST_DOWNLOADS", settings.cache_root / "downloads")).resolve()
    root = ingested(workdir, downloads)

    import torch

    torch.set_num_threads(os.cpu_count() or 1)  # as the CLI's single worker does
    start = time.perf_counter()
    sha256 = model_identity(MODEL, None)  # what the flow process spends before planning
    identity_s = time.perf_counter() - start
    load_model.cache_clear()  # where the identity was a model load, the load is timed afresh
    start = time.perf_counter()
    model = load_model(MODEL)
    load_s = time.perf_counter() - start
    specs = planned_specs(build_protocols(PROTOCOLS, OPTIONS))
    units = case_units(root, args.case, sha256, specs)
    work = [(u, unit_objects(root / "catalog", u, MODEL, sha256, [p.spec for p in specs.values()])) for u in units]
    n_objects = sum(len(objects) for _, objects in work)

    rounds = fastest_rounds(model, units, work, specs, args.repeats)
    encoder_s, encoder_cpu_s, passes = rounds.encoder
    unit, unit_cpu_s = rounds.unit, rounds.unit_cpu_s
    efficiency = encoder_efficiency(model, slice_rgb(StoredCase(as_location(units[0].zarr_path)), units[0].slices[0]),
                                    encoder_s / passes)
    cpu = time.process_time()
    other = time_unit(model, work, specs, batched=not model.batches_decoding)  # the other decoding path
    other_cpu_s = time.process_time() - cpu
    assert other.rows == unit.rows and other.prompts == unit.prompts
    unit_s, decodes, rows = unit.seconds, unit.prompts, unit.rows
    with timed_passes(model.encoder) as naive_encodes:
        naive = time_unit(ReEncoding(model), naive_sample(work, args.naive_slices), specs, batched=False)
    naive_s, naive_decodes = naive.seconds, naive.prompts
    assert len(naive_encodes) == naive_decodes, "the naive loop re-encodes before every decoder call"
    cli = time_cli(workdir, root, downloads, *case_cli_args(args.case))
    cli_s = cli.wall_s
    large = time_large(model, workdir, root, downloads, sha256, args.large_slices) if args.large_slices else None
    large_ingested(root, workdir, downloads)
    from pipeline import pipeline_figures  # bench/pipeline.py, which imports this module's helpers

    pipeline = pipeline_figures(root)

    naive_per_prompt, unit_per_prompt = naive_s / naive_decodes, unit_s / decodes
    figures = {
        "case": f"{DATASET}/{args.case}", "slices": passes, "objects": n_objects, "rows": rows, "decoder_calls": decodes,
        "decoder_batches": unit.passes, "torch_threads": torch.get_num_threads(), "repeats": args.repeats,
        "encoder_s_rounds": [round(s, 2) for s in rounds.encoder_s_all],
        "unit_s_rounds": [round(s, 2) for s in rounds.unit_s_all], "encoder_s": round(encoder_s, 2), "encoder_cpu_s": round(encoder_cpu_s, 2),
        "unit_s": round(unit_s, 2), "unit_cpu_s": round(unit_cpu_s, 2), "unit_decoder_s": round(unit.decoder_s, 2),
        "unit_cpu_over_encoder_cpu": round(unit_cpu_s / encoder_cpu_s, 3),
        "unit_batched": model.batches_decoding, "unit_other_path_s": round(other.seconds, 2),
        "unit_other_path_cpu_s": round(other_cpu_s, 2), "unit_other_path_decoder_batches": other.passes,
        "unit_other_path_over_encoder": round(other.seconds / encoder_s, 3),
        "unit_other_path_cpu_over_encoder_cpu": round(other_cpu_s / encoder_cpu_s, 3), "cli_s": round(cli_s, 2),
        "cli_fixed_s": round(cli_s - unit_s, 2), "cli_cpu_s": round(cli.cpu_s, 1), "model_identity_s": round(identity_s, 3), "model_load_s": round(load_s, 2),
        "naive_s_per_prompt": round(naive_per_prompt, 3), "unit_s_per_prompt": round(unit_per_prompt, 4),
        "naive_sample_decoder_calls": naive_decodes,
        "unit_over_encoder": round(unit_s / encoder_s, 3), "cli_over_encoder": round(cli_s / encoder_s, 3),
        "naive_speedup": round(naive_per_prompt / unit_per_prompt, 2),
        "encoder_gflop_per_slice": round(efficiency.flops / 1e9, 2), "encoder_gflops": round(efficiency.encoder_gflops, 1),
        "matmul_gflops": round(efficiency.matmul_gflops, 1), "encoder_efficiency": round(efficiency.ratio, 3),
    }
    figures |= cli.startup_figures("cli_")
    figures |= {"pipeline_prompts": pipeline.prompts, "pipeline_s": round(pipeline.pipeline_s, 2),
                "pipeline_prompts_per_s": round(pipeline.pipeline_prompts_per_s, 1),
                "pipeline_rounds_prompts_per_s": list(pipeline.rounds_prompts_per_s)}
    if large is not None:
        figures |= {"large_case": f"{LARGE_DATASET}/{LARGE_CASE}", "large_slices": large.slices,
                    "large_encoder_s": round(large.encoder_s, 2), "large_cli_s": round(large.cli.wall_s, 2),
                    "large_cli_cpu_s": round(large.cli.cpu_s, 1),
                    "cli_over_encoder_large": round(large.cli.wall_s / large.encoder_s, 3)}
        figures |= large.cli.startup_figures("large_cli_")
    print(f"{figures['case']}: {passes} slices, {n_objects} objects, {rows} result rows, {decodes} decoder calls "
          f"({figures['torch_threads']} torch threads)")
    print(f"  bare encoder         {encoder_s:7.2f} s  ({encoder_s / passes:.2f} s/slice; fastest of "
          f"{', '.join(f'{s:.2f}' for s in rounds.encoder_s_all)})")
    print(f"  encoder arithmetic   {efficiency.flops / 1e9:.2f} GFLOP/slice at {efficiency.encoder_gflops:.1f} GFLOP/s "
          f"= {efficiency.ratio:.2f} x this machine's fp32 matmul ({efficiency.matmul_gflops:.1f} GFLOP/s)")
    print(f"  run_unit             {unit_s:7.2f} s  = {figures['unit_over_encoder']:.2f} x encoder "
          f"({decodes} prompts in {unit.passes} decoder batches, {unit.decoder_s:.2f} s in the decoder; "
          f"{unit_cpu_s:.1f} CPU s; fastest of {', '.join(f'{s:.2f}' for s in rounds.unit_s_all)})")
    other_name = "run_unit, 1 by 1 " if model.batches_decoding else "run_unit, batched"
    print(f"  {other_name}    {other.seconds:7.2f} s  = {figures['unit_other_path_over_encoder']:.2f} x encoder "
          f"({other.prompts} prompts in {other.passes} decoder passes; {other_cpu_s:.1f} CPU s)")
    print(f"  samatlas evaluate    {cli_s:7.2f} s  = {figures['cli_over_encoder']:.2f} x encoder "
          f"(fixed cost beside the unit: {figures['cli_fixed_s']:.1f} s; {cli.cpu_s:.0f} CPU s in all its processes)")
    if (cold := cli.cold_start) is not None:
        by_process = ", ".join(f"{name} {cpu_s:.1f}" for name, cpu_s in cold.cpu_s.items() if cpu_s >= 0.05)
        print(f"  its cold start       first unit at {cold.first_unit_s:.1f} s; CPU s before it: {by_process} = {cold.spent_s:.1f} "
              f"= {figures['cli_startup_cpu_over_cores_s']:.1f} s on {os.cpu_count()} cores "
              f"({figures['cli_startup_idle_core_s']:.1f} core-s left idle)")
    if large is not None:
        print(f"  long run             {large.cli.wall_s:7.2f} s  = {figures['cli_over_encoder_large']:.2f} x encoder "
              f"({large.slices} slices of {LARGE_DATASET}, {LARGE_PROTOCOL}; bare encoder {large.encoder_s:.1f} s)")
    print(f"  stand-in pipeline    {pipeline.pipeline_prompts_per_s:7.1f} object-prompts/s per core "
          f"({pipeline.prompts} prompts in {pipeline.pipeline_s:.1f} s beside the stand-in's fixed time)")
    print(f"  naive loop           {naive_per_prompt:7.3f} s/prompt vs run_unit {unit_per_prompt:.4f} s/prompt "
          f"= {figures['naive_speedup']:.1f} x (measured on {naive_decodes} decoder calls, scaled per prompt)")
    print(f"  flow-side identity   {identity_s:7.3f} s; model load {load_s:.2f} s")
    print(json.dumps({"bench": "evaluate", **figures}))


if __name__ == "__main__":
    main()
