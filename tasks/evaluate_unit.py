"""One evaluation work unit: the planned objects of one case, each slice encoded once.

Every protocol, step and object of a slice reuses the slice's embedding, and their prompts are
decoded in batches: the protocols of every object of a slice (of up to ``SLICE_GROUP`` slices where
the model's decoder batches across slices) advance in lockstep, each round's requests decoded
together. The unit returns typed result rows and how many encoder calls it made (the flow commits
the rows).

A spec with ``instances: "microsam"`` is also scored per image: after all objects of a slice ran,
their masks of each step are pasted into one instance map and matched to the slice's GT instances
(``tasks.instance_metrics``), giving one ``instances`` row per (slice, spec, step). That needs
every labelled object of the slice in this unit: a slice where the spec ran on only some of its
labels (the rest computed by an earlier run, or too small for the spec) gets no instance row,
since its masks are not stored and the image cannot be scored honestly.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field

import numpy as np

from records.rows import SLICE, InstanceRow, ResultRow
from records.specs import ProtocolSpec
from records.units import PlannedObject
from tasks.batched_decoding import DecodeTally, RoundDecoder, on_embedding
from tasks.instance_metrics import image_scores
from tasks.intensity import to_uint8
from tasks.locations import Location
from tasks.metrics import MetricConvention, Reference, Scores
from tasks.models import SegmentationModel
from tasks.models.base import Decoded, Embedding, Prepared, Prompt
from tasks.prefetch import AHEAD, PREPARE_THREADS, prefetched
from tasks.protocols import AnyProtocol, Context, PromptProtocol, object_seed
from tasks.protocols.base import drive, lockstep
from tasks.settings import get_settings
from tasks.store import StoredCase


SLICE_GROUP = 8
"""Slices whose prompts share decoder batches, for a model that batches across slices: their
embeddings are held at once (LiteMedSAM: 4 MiB each)."""


@dataclass(frozen=True)
class PlannedSpec:
    """A spec and the protocol instance that produces it (slice-wise or volumetric)."""

    spec: ProtocolSpec
    protocol: AnyProtocol


@dataclass(frozen=True)
class RunStamp:
    """What every row of a run carries about the run itself."""

    run_id: str
    code_version: str


@dataclass
class UnitResult:
    """The rows a unit produced (per object, and per image for instance-scored specs), its encoder call
    count and what its decoding did (requests, prompts decoded, decoder calls)."""

    rows: list[ResultRow] = field(default_factory=list)
    instances: list[InstanceRow] = field(default_factory=list)
    encoder_calls: int = 0
    decoding: DecodeTally = field(default_factory=DecodeTally)


def slice_rgb(case: StoredCase, z: int, window: tuple[float, float] | None = None) -> np.ndarray:
    """Slice ``z`` as a (H, W, 3) uint8 image, each channel scaled by the window stored at ingest,
    or by ``window`` (low, high) in its place (``tasks.intensity.parse_window``)."""
    planes = case.image_slice(z)
    windows = case.meta["window"] if window is None else [window] * planes.shape[0]
    scaled = [to_uint8(planes[c], *windows[c]) for c in range(planes.shape[0])]
    if len(scaled) == 1:
        scaled = scaled * 3
    return np.stack(scaled[:3], axis=-1)


def _predictor(model: SegmentationModel, embedding: Embedding, timer: list[float]):
    def predict(prompt: Prompt, multimask: bool) -> tuple[np.ndarray, np.ndarray]:
        start = time.perf_counter()
        out = model.decode(embedding, prompt, multimask)
        timer.append(time.perf_counter() - start)
        return out

    return predict


def _mask_predictor(model: SegmentationModel, embedding: Embedding, timer: list[float]):
    def predict_with_mask(prompt: Prompt, multimask: bool, mask_input: np.ndarray | None) -> Decoded:
        start = time.perf_counter()
        out = model.decode_with_mask(embedding, prompt, multimask, mask_input)
        timer.append(time.perf_counter() - start)
        return out

    return predict_with_mask


def object_context(
    model: SegmentationModel, embedding: Embedding, gt: np.ndarray, key: tuple[str, str, int, int],
    protocol: PromptProtocol, timer: list[float] | None = None,
) -> Context:
    """A protocol's view of one object: the slice's geometry, and an RNG seeded from the object's key
    (dataset, case, slice, label) and the protocol, so the same object always gets the same prompts.

    With a ``timer`` the context also carries predictors on ``embedding`` (each call's seconds appended),
    for :meth:`~tasks.protocols.base.PromptProtocol.run`; without one it is for a unit that decodes the
    protocol's requests itself."""
    rng = np.random.default_rng(object_seed(*key, protocol.name))
    if timer is None:
        return Context(gt, embedding.geometry, model.box_shift, None, rng, takes_mask_input=model.takes_mask_input)
    with_mask = _mask_predictor(model, embedding, timer) if model.takes_mask_input else None
    return Context(gt, embedding.geometry, model.box_shift, _predictor(model, embedding, timer), rng, with_mask,
                   takes_mask_input=model.takes_mask_input)


def _asked(obj: PlannedObject, specs: Mapping[str, PlannedSpec]) -> list[tuple[PromptProtocol, dict[str, ProtocolSpec]]]:
    """The protocols ``obj`` needs, each with its asked-for specs by variant name."""
    asked: dict[str, dict[str, ProtocolSpec]] = defaultdict(dict)
    protocols: dict[str, PromptProtocol] = {}
    for spec_id in obj.spec_ids:
        planned = specs[spec_id]
        asked[planned.protocol.name][planned.spec.name] = planned.spec
        protocols[planned.protocol.name] = planned.protocol
    return [(protocols[name], by_name) for name, by_name in asked.items()]


@dataclass
class _Run:
    """One (object, protocol) of a unit: where its steps' rows come from."""

    z: int
    obj: PlannedObject
    reference: Reference  # the object's mask on this slice, shared by its protocols' scores
    by_name: dict[str, ProtocolSpec]
    timer: list[float]


@dataclass(frozen=True)
class _Encoded:
    """One slice of a unit, read and encoded: its label plane, its embedding and its share of the
    encoder pass that made it (seconds)."""

    z: int
    plane: np.ndarray
    embedding: Embedding
    encode_s: float


def run_unit(
    case_path: Location,
    dataset: str,
    case_id: str,
    objects: Sequence[PlannedObject],
    model: SegmentationModel,
    specs: Mapping[str, PlannedSpec],
    stamp: RunStamp,
    window: tuple[float, float] | None = None,
    batched: bool | None = None,
    encoder_batch: int | None = None,
) -> UnitResult:
    """Evaluate ``objects`` of one stored case with ``model`` under the spec ids each object lacks.

    ``specs`` maps spec id -> (spec, protocol). A protocol runs once per object for all the variants
    it is asked for; only the steps of asked-for specs become rows, scored by each spec's metric
    convention. ``window`` (low, high) replaces the case's stored window (one for the whole unit,
    since each slice is encoded once).

    Every (object, protocol) of a group of slices runs in lockstep: each round, the requests of all
    of them are decoded together (:class:`~tasks.batched_decoding.RoundDecoder`), in batches
    (``batched=True``) or one call per prompt (``batched=False``: the same masks, one decoder call
    each); by default as the model says pays (``batches_decoding``: on a GPU, not on a CPU). A
    batched group is up to :data:`SLICE_GROUP` slices for a model whose decoder batches prompts of
    several slices (``batches_slices``), else one slice; their embeddings are held together.
    ``encoder_batch`` slices go through the encoder in one pass (``encoder_batch`` of the settings
    where decoding is batched, else 1: a CPU is no faster on a batch); their embeddings are held
    until their groups are decoded.
    """
    if batched is None:
        batched = model.batches_decoding
    if encoder_batch is None:
        encoder_batch = get_settings().encoder_batch if batched else 1
    case = StoredCase(case_path)
    by_slice: dict[int, list[PlannedObject]] = defaultdict(list)
    for obj in objects:
        by_slice[obj.slice_index].append(obj)
    result = UnitResult()
    decoder = RoundDecoder(model, batched)
    slices = sorted(by_slice)
    group = SLICE_GROUP if batched and model.batches_slices else 1
    span = max(group, encoder_batch)  # slices read and encoded before their groups are decoded
    unit = _Unit(dataset, case_id, model, specs, stamp, case.spacing[1:], by_slice)
    encoder = SliceEncoder(model, encoder_batch)
    # each slice read and prepared for the encoder, with its label plane, on background threads while the model runs
    reads = prefetched(slices, lambda z: (model.prepare(slice_rgb(case, z, window)), case.mask_slice(z)),
                       ahead=max(AHEAD, span), threads=PREPARE_THREADS if batched else 1)
    with closing(reads):
        for first in range(0, len(slices), span):
            encoded = encoder.encode(list(itertools.islice(reads, len(slices[first : first + span]))))
            result.encoder_calls += len(encoded)
            for start in range(0, len(encoded), group):
                unit.score_group(encoded[start : start + group], decoder, result)
    result.decoding = decoder.tally
    return result


@dataclass
class SliceEncoder:
    """Encodes a unit's read slices ``batch`` per encoder pass, each charged its share of its pass.

    A pass that runs out of device memory (a large model at a large ``encoder_batch`` on a small GPU:
    SAM ViT-H's global attention holds about 1 GiB per slice in fp32) is retried at half the batch,
    and the unit's later passes keep the smaller batch, so the unit slows down instead of failing and
    pays for one failed pass per halving, not one per pass. A single slice that does not fit fails."""

    model: SegmentationModel
    batch: int

    def encode(self, read: Sequence[tuple[int, tuple[Prepared, np.ndarray]]]) -> list[_Encoded]:
        out: list[_Encoded] = []
        while len(out) < len(read):
            chunk = read[len(out) : len(out) + self.batch]
            start = time.perf_counter()
            try:
                embeddings = self.model.encode_prepared([prepared for _, (prepared, _) in chunk])
            except RuntimeError as exc:  # torch.OutOfMemoryError, by name: this module is imported without torch
                if type(exc).__name__ != "OutOfMemoryError" or len(chunk) == 1:
                    raise
                import torch

                torch.cuda.empty_cache()
                self.batch = len(chunk) // 2
                continue
            share = (time.perf_counter() - start) / len(chunk)
            out += [_Encoded(z, plane, embedding, share) for (z, (_, plane)), embedding in zip(chunk, embeddings)]
        return out


@dataclass(frozen=True)
class _Unit:
    """What every slice group of one :func:`run_unit` call is scored with."""

    dataset: str
    case_id: str
    model: SegmentationModel
    specs: Mapping[str, PlannedSpec]
    stamp: RunStamp
    spacing: Sequence[float]
    by_slice: Mapping[int, Sequence[PlannedObject]]

    def score_group(self, encoded: Sequence[_Encoded], decoder: RoundDecoder, result: UnitResult) -> None:
        """Run every (object, protocol) of these slices in lockstep and append their rows to ``result``."""
        model, dataset, case_id = self.model, self.dataset, self.case_id
        runs: list[_Run] = []
        steps_of = []
        for slice_ in encoded:
            for obj in self.by_slice[slice_.z]:
                gt = slice_.plane == obj.label
                reference = Reference(gt, self.spacing)
                for protocol, by_name in _asked(obj, self.specs):
                    ctx = object_context(model, slice_.embedding, gt, (dataset, case_id, slice_.z, obj.label), protocol)
                    run = _Run(slice_.z, obj, reference, by_name, [])
                    runs.append(run)
                    steps_of.append(on_embedding(protocol.steps(ctx, frozenset(by_name)), slice_.embedding, run.timer))
        outcomes = drive(lockstep(steps_of), decoder)
        encode_s = {slice_.z: slice_.encode_s for slice_ in encoded}
        # spec id -> step -> {label: mask}, per slice, for the specs scored per image too
        kept: dict[int, dict[str, dict[int, dict[int, np.ndarray]]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(dict)))
        for run, steps in zip(runs, outcomes):
            obj, reference = run.obj, run.reference
            scored: dict[tuple[MetricConvention, tuple[int, ...], bytes], Scores] = {}
            for step in steps:
                spec = run.by_name.get(step.protocol)
                if spec is None:  # a variant computed alongside but not asked for
                    continue
                if spec.params.get("instances"):
                    kept[run.z][spec.id][step.step][obj.label] = step.mask
                # Variants often keep the same mask (an oracle choosing output 0, a prompt decoded once
                # for two variants): each distinct mask is scored once per convention.
                convention = MetricConvention(**spec.params["scoring"])
                key = (convention, np.shape(step.mask), np.packbits(np.asarray(step.mask, dtype=bool)).tobytes())
                if key not in scored:
                    scored[key] = reference.score(step.mask, convention)
                scores = scored[key]
                result.rows.append(ResultRow(
                    dataset=dataset, case_id=case_id, scope=SLICE, slice_index=run.z, label=obj.label,
                    target=obj.target, model=model.name, model_sha256=model.sha256,
                    protocol=spec.name, spec_id=spec.id, spec=spec.params_json, spec_label=spec.label,
                    step=step.step, prompt=step.prompt.to_json(),
                    dice=scores.dice, iou=scores.iou, nsd=scores.nsd, hd95=scores.hd95,
                    gt_area_px=reference.voxels, pred_area_px=int(np.count_nonzero(step.mask)), model_score=step.score,
                    encode_s=encode_s[run.z], decode_s=sum(run.timer) / max(len(run.timer), 1),
                    run_id=self.stamp.run_id, code_version=self.stamp.code_version,
                    modality=obj.modality, anatomy=obj.anatomy,
                ))
        for slice_ in encoded:
            result.instances += slice_instances(slice_.plane, kept[slice_.z], self.specs,
                                                (dataset, case_id, slice_.z), model, self.stamp,
                                                self.by_slice[slice_.z][0].modality)


def slice_instances(
    mask_plane: np.ndarray, kept: Mapping[str, Mapping[int, Mapping[int, np.ndarray]]],
    specs: Mapping[str, PlannedSpec], where: tuple[str, str, int], model: SegmentationModel, stamp: RunStamp,
    modality: str,
) -> list[InstanceRow]:
    """One ``instances`` row per (spec, step) whose masks cover every labelled object of the slice."""
    labels = set(int(v) for v in np.unique(mask_plane)) - {0}
    rows = []
    dataset, case_id, z = where
    for spec_id, by_step in kept.items():
        spec = specs[spec_id].spec
        for step, masks in sorted(by_step.items()):
            if set(masks) != labels:
                continue
            scores = image_scores([masks[k] for k in sorted(masks)], mask_plane)
            rows.append(InstanceRow(
                dataset=dataset, case_id=case_id, slice_index=z, model=model.name, model_sha256=model.sha256,
                protocol=spec.name, spec_id=spec.id, spec_label=spec.label, step=step,
                n_gt=scores.n_gt, n_pred=scores.n_pred, tp=list(scores.tp),
                msa=scores.msa, sa50=scores.sa50, sa75=scores.sa75,
                run_id=stamp.run_id, code_version=stamp.code_version, modality=modality,
            ))
    return rows
