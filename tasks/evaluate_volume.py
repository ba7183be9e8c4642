"""One volumetric work unit: every planned volume object of one case under the volumetric specs it lacks.

The unit reads the case's label volume once, encodes each slice it visits at most once (an
:class:`~tasks.embedding_cache.EmbeddingCache` holds a bounded number of embeddings in memory and
spills the rest to local disk), and scores every step of every object in 3D at the case's spacing.
It returns ``results`` rows (scope ``volume``) and, beside each, a ``volume_steps`` row (the slices the
step prompted, its encoder and decoder calls, the volumes, the label image holding its mask).

Predicted label volumes are stored in the case's OME-Zarr (``tasks.predictions``): by default the first
and the final step of each spec (``store_steps="first-final"``), every step with ``"all"``, none with
``"none"``. Specs run one after the other, so at most one spec's stored steps are held as label maps
at a time; each object's step volume is scored and dropped before its next step is computed.

Protocols that ``needs_video`` (SAM 2 memory propagation) get the model's video session over the case
(``model.video_session``, one per unit; its encoder passes count with the cache's); a model without
``supports_video`` is refused by name before anything runs.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import numpy as np

from records.rows import VOLUME, ResultRow, VolumeStepRow
from records.specs import ProtocolSpec
from records.units import PlannedVolume
from tasks.embedding_cache import RAM_SLOTS, EmbeddingCache
from tasks.evaluate_unit import PlannedSpec, RunStamp, slice_rgb
from tasks.locations import Location
from tasks.metrics import MetricConvention, Reference
from tasks.models import SegmentationModel, no_video_mode
from tasks.models.base import Prompt
from tasks.predictions import PredictionInfo, paint, prediction_name, store_label_map
from tasks.protocols.volumetric import StepActivity, VolumeContext, VolumeProtocol, VolumeStep, volume_seed
from tasks.store import StoredCase

STORE_STEPS = ("first-final", "all", "none")


@dataclass
class VolumeUnitResult:
    """The rows a volumetric unit produced, its encoder calls and the label images it stored."""

    rows: list[ResultRow] = field(default_factory=list)
    steps: list[VolumeStepRow] = field(default_factory=list)
    encoder_calls: int = 0
    stored: list[str] = field(default_factory=list)


def stored_steps(spec: ProtocolSpec, store_steps: str) -> frozenset[int]:
    """The steps of ``spec`` whose predicted volumes are stored."""
    if store_steps not in STORE_STEPS:
        raise ValueError(f"store_steps must be one of {', '.join(STORE_STEPS)}, not {store_steps!r}")
    if store_steps == "none":
        return frozenset()
    return frozenset(range(1, spec.steps + 1)) if store_steps == "all" else frozenset({1, spec.steps})


class _Predictor:
    """The slice predictor protocols get: the cache's embedding of a slice, one decoder call, timed."""

    def __init__(self, model: SegmentationModel, cache: EmbeddingCache):
        self.model, self.cache = model, cache
        self.decode_s = 0.0

    def __call__(self, z: int, prompt: Prompt) -> tuple[np.ndarray, float]:
        embedding = self.cache.get(z)
        start = time.perf_counter()
        masks, scores = self.model.decode(embedding, prompt, False)
        self.decode_s += time.perf_counter() - start
        return masks[0], float(scores[0])


def run_volume_unit(
    case_path: Location, dataset: str, case_id: str, volumes: Sequence[PlannedVolume], model: SegmentationModel,
    specs: Mapping[str, PlannedSpec], stamp: RunStamp, window: tuple[float, float] | None = None,
    store_steps: str = "first-final", ram_slots: int = RAM_SLOTS,
) -> VolumeUnitResult:
    """Evaluate ``volumes`` of one stored 3D case with ``model`` under the volumetric spec ids each lacks."""
    case = StoredCase(case_path)
    labels = case.group["labels/mask/0"][:]
    if labels.shape[0] < 2:
        raise ValueError(f"{case_path}: a volumetric protocol needs a 3D case; this one has a single slice")
    spacing = case.spacing
    geometry = model.geometry(*labels.shape[1:])
    result = VolumeUnitResult()
    by_protocol: dict[str, list[tuple[PlannedVolume, list[ProtocolSpec]]]] = defaultdict(list)
    protocols: dict[str, VolumeProtocol] = {}
    for volume in volumes:
        asked: dict[str, list[ProtocolSpec]] = defaultdict(list)
        for spec_id in volume.spec_ids:
            planned = specs[spec_id]
            asked[planned.protocol.name].append(planned.spec)
            protocols[planned.protocol.name] = planned.protocol
        for name, wanted in asked.items():
            by_protocol[name].append((volume, wanted))
    video_session = _video_session(model, protocols.values(), case, labels.shape, window)
    with EmbeddingCache(model, lambda z: slice_rgb(case, z, window), ram_slots) as cache, video_session as video:
        predictor = _Predictor(model, cache)
        def encoded() -> tuple[int, float]:
            return (cache.encoder_calls + (video.encoder_calls if video else 0),
                    cache.encode_s + (video.encode_s if video else 0.0))
        for name, work in by_protocol.items():
            painted: dict[tuple[str, int], np.ndarray] = {}
            values: dict[tuple[str, int], list[int]] = defaultdict(list)
            for volume, wanted in work:
                gt = labels == volume.label
                truth = Reference(gt, spacing)  # its count and boundary once per object, not per step
                ctx = VolumeContext(gt, volume, geometry, model.box_shift,
                                    np.random.default_rng(volume_seed(dataset, case_id, volume.label, name)), predictor, video)
                by_name = {s.name: s for s in wanted}
                (calls, encode_s), decode_s, start = encoded(), predictor.decode_s, time.perf_counter()
                for step in protocols[name].run(ctx, frozenset(by_name)):  # the model works until each yield
                    activity = ctx.take_activity()
                    now_calls, now_s = encoded()
                    spent = (now_calls - calls, now_s - encode_s, predictor.decode_s - decode_s, time.perf_counter() - start)
                    spec = by_name.get(step.protocol)
                    if spec is not None:  # else a variant computed alongside but not asked for
                        keep = step.step in stored_steps(spec, store_steps)
                        if keep:
                            _paint(painted, values, (spec.id, step.step), step.mask, volume.label, labels)
                        stored = prediction_name(model.name, model.sha256, spec.name, spec.id, step.step) if keep else None
                        _append_rows(result, dataset, case_id, volume, spec, step, truth, model, stamp,
                                     activity, spent, stored)
                    (calls, encode_s), decode_s, start = encoded(), predictor.decode_s, time.perf_counter()
            for (spec_id, step_no), label_map in painted.items():
                spec = specs[spec_id].spec
                info = PredictionInfo(model=model.name, model_sha256=model.sha256, protocol=spec.name, spec_id=spec.id,
                                      spec_label=spec.label, step=step_no, labels=tuple(sorted(values[spec_id, step_no])),
                                      run_id=stamp.run_id)
                result.stored.append(store_label_map(case_path, info, label_map, values[spec_id, step_no]))
        result.encoder_calls = encoded()[0]
    return result


def _video_session(
    model: SegmentationModel, protocols: Iterable[VolumeProtocol], case: StoredCase, shape: tuple[int, ...],
    window: tuple[float, float] | None,
) -> AbstractContextManager:
    """The model's video session over the case when a protocol needs one (else a no-op context); a
    model without video mode is refused, naming the ones that have it."""
    needing = sorted(p.name for p in protocols if p.needs_video)
    if not needing:
        return nullcontext(None)
    if not getattr(model, "supports_video", False):
        raise ValueError(no_video_mode(model.name, needing))
    depth, height, width = shape
    return model.video_session(lambda z: slice_rgb(case, z, window), depth, height, width)


def _paint(
    painted: dict[tuple[str, int], np.ndarray], values: dict[tuple[str, int], list[int]], key: tuple[str, int],
    mask: np.ndarray, label: int, labels: np.ndarray,
) -> None:
    """Paint one object's predicted volume into the label map of its (spec, step)."""
    if key not in painted:
        painted[key] = np.zeros(labels.shape, dtype=labels.dtype)
    paint(painted[key], mask, label)
    values[key].append(label)


def _append_rows(
    result: VolumeUnitResult, dataset: str, case_id: str, volume: PlannedVolume, spec: ProtocolSpec, step: VolumeStep,
    truth: Reference, model: SegmentationModel, stamp: RunStamp,
    activity: StepActivity,
    spent: tuple[int, float, float, float], prediction: str | None,
) -> None:
    """The ``results`` row and the ``volume_steps`` row of one scored step."""
    encoder_calls, encode_s, decode_s, seconds = spent
    scores = truth.score(step.mask, MetricConvention(**spec.params["scoring"]))
    gt_voxels = truth.voxels
    voxel_mm3 = float(np.prod(truth.spacing))
    pred_voxels = int(np.count_nonzero(step.mask))
    result.rows.append(ResultRow(
        dataset=dataset, case_id=case_id, scope=VOLUME, slice_index=-1, label=volume.label, target=volume.target,
        model=model.name, model_sha256=model.sha256, protocol=spec.name, spec_id=spec.id, spec=spec.params_json,
        spec_label=spec.label, step=step.step, prompt=step.prompt_json(),
        dice=scores.dice, iou=scores.iou, nsd=scores.nsd, hd95=scores.hd95,
        gt_area_px=gt_voxels, pred_area_px=pred_voxels, model_score=activity.mean_score,
        encode_s=encode_s, decode_s=decode_s / max(activity.decoder_calls, 1),
        run_id=stamp.run_id, code_version=stamp.code_version, modality=volume.modality, anatomy=volume.anatomy,
    ))
    result.steps.append(VolumeStepRow(
        dataset=dataset, case_id=case_id, label=volume.label, model=model.name, model_sha256=model.sha256,
        protocol=spec.name, spec_id=spec.id, step=step.step, visited=list(activity.visited),
        encoder_calls=encoder_calls, decoder_calls=activity.decoder_calls,
        gt_mm3=gt_voxels * voxel_mm3, pred_mm3=pred_voxels * voxel_mm3, seconds=seconds, prediction=prediction,
        run_id=stamp.run_id, modality=volume.modality, anatomy=volume.anatomy,
    ))
