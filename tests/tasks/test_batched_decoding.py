"""Batched decoding equals decoding one prompt at a time.

The lockstep driver is checked on plain generators; LiteMedSAM's ``decode_batch`` against single calls
on two real lesion slices (pyradiomics brain1) with mixed prompt shapes; and ``run_unit`` batched
against ``run_unit`` one call per prompt on a stored case of those two slices, under every slice-wise
protocol: the same masks and rows. Batched matrix products sum in another order, so logits and
scores agree to float rounding (~1e-6), not bit for bit; a mask pixel could only differ where its
logit lies that close to the threshold, which these slices do not hit.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tasks.models import load_model
from tasks.models.base import DecodeRequest, Prompt
from tasks.models.filled_box import FilledBox
from tasks.protocols.base import drive, lockstep
from tasks.protocols.sammed2d import sigmoid


# ---------------------------------------------------------------- lockstep, without a model


def _echo(name: str, rounds: int, many: bool):
    """Asks (name, k) for k = 1..rounds, one or two per round; returns what it got back."""
    got = []
    for k in range(1, rounds + 1):
        if many:
            got += (yield [(name, k, "a"), (name, k, "b")])
        else:
            got.append((yield (name, k)))
    return got


def test_lockstep_rounds_collect_every_pending_ask_and_route_answers():
    rounds: list[list] = []

    def answer(asks):
        rounds.append(list(asks))
        return [("answer", *a) for a in asks]

    results = drive(lockstep([_echo("x", 3, False), _echo("y", 1, True), _echo("z", 2, False)]), answer)
    assert rounds == [
        [("x", 1), ("y", 1, "a"), ("y", 1, "b"), ("z", 1)],
        [("x", 2), ("z", 2)],
        [("x", 3)],
    ]
    assert results == [
        [("answer", "x", 1), ("answer", "x", 2), ("answer", "x", 3)],
        [("answer", "y", 1, "a"), ("answer", "y", 1, "b")],
        [("answer", "z", 1), ("answer", "z", 2)],
    ]
    # nested: a lockstep inside a generator inside a lockstep flattens into the same rounds
    def nested():
        return (yield from lockstep([_echo("p", 2, False), _echo("q", 1, False)]))

    rounds.clear()
    assert drive(lockstep([nested(), _echo("r", 1, False)]), answer) == [
        [[("answer", "p", 1), ("answer", "p", 2)], [("answer", "q", 1)]], [("answer", "r", 1)]]
    assert rounds == [[("p", 1), ("q", 1), ("r", 1)], [("p", 2)]]


# ---------------------------------------------------------------- LiteMedSAM on two real slices


@pytest.fixture(scope="module")
def lite():
    return load_model("litemedsam")


@pytest.fixture(scope="module")
def lesion_slices(tmp_path_factory):
    """Two real lesion slices of pyradiomics brain1: (z, image, gt) each."""
    from tests.tasks.test_litemedsam_reference import sample_slices

    return sample_slices("brain1", tmp_path_factory.mktemp("brain1"), count=2)


def _requests(gt: np.ndarray, mask_input: np.ndarray) -> list[DecodeRequest]:
    """Mixed shapes: box, 1 / 2 / 3 points, box + points, multimask on and off, a mask input, a repeat."""
    ys, xs = np.nonzero(gt)
    box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    inside = [(float(xs[i]), float(ys[i])) for i in np.linspace(0, xs.size - 1, 3).astype(int)]
    out = (float(xs.min()) - 5, float(ys.min()) - 5)
    return [
        DecodeRequest(Prompt(box=box), multimask=False),
        DecodeRequest(Prompt(points=tuple(inside[:1]), point_labels=(1,)), multimask=True),
        DecodeRequest(Prompt(box=box), multimask=True),  # 2 sparse tokens, as the 1-point prompt
        DecodeRequest(Prompt(points=(inside[0], out), point_labels=(1, 0)), multimask=False),
        DecodeRequest(Prompt(points=tuple(inside), point_labels=(1, 1, 1)), multimask=True),
        DecodeRequest(Prompt(box=box, points=(inside[1],), point_labels=(1,)), multimask=False),
        DecodeRequest(Prompt(points=tuple(inside[:1]), point_labels=(1,)), multimask=True, mask_input=mask_input),
        DecodeRequest(Prompt(points=(inside[0], out), point_labels=(1, -1)), multimask=True, mask_input=mask_input),
        DecodeRequest(Prompt(box=box), multimask=False),
    ]


def batch_against_single(model, decoder, embeddings, requests, max_flipped: int = 0) -> int:
    """Assert ``model.decode_batch`` equals one ``decode_with_mask`` call per request; return the
    ``decoder`` module's passes in the batched call.

    ``max_flipped``: mask pixels allowed to differ per request, for randomly initialised weights, whose
    logits crowd around 0 (|logit| ~0.1 on average, some within 1e-6 of the threshold, so the batched
    sum order's ~3e-7 flips one now and then); trained weights get none."""
    passes: list[int] = []
    hook = decoder.register_forward_hook(lambda *args: passes.append(1))
    try:
        batched = model.decode_batch(embeddings, requests)
        batch_passes = len(passes)
        single = [model.decode_with_mask(e, r.prompt, r.multimask, r.mask_input) for e, r in zip(embeddings, requests)]
    finally:
        hook.remove()
    assert len(passes) - batch_passes == len(requests)
    for b, s, r in zip(batched, single, requests):
        assert b.masks.shape == s.masks.shape and b.masks.shape[0] == (3 if r.multimask else 1)
        assert int((b.masks != s.masks).sum()) <= max_flipped
        np.testing.assert_allclose(b.scores, s.scores, atol=1e-5)
        np.testing.assert_allclose(b.low_res, s.low_res, atol=1e-4)
    fractions = [float(m.mean()) for b in batched for m in b.masks]
    assert any(0.01 < f < 0.99 for f in fractions)  # the comparison was not between empty (or full) masks
    return batch_passes


def two_embeddings_mixed_requests(embedding, prompts, mask_size) -> tuple[list, list[DecodeRequest]]:
    """Every prompt with multimask on and off, one with a mask input, on ``embedding`` and on a second
    embedding object holding the same features (another slice, as far as batching can tell)."""
    other = dataclasses.replace(embedding)
    requests = [DecodeRequest(p, mm) for p in prompts for mm in (True, False)]
    requests.append(DecodeRequest(prompts[0], True, np.full(mask_size, 0.5, np.float32)))
    return [embedding] * len(requests) + [other] * len(requests), requests + requests


def test_decode_batch_equals_single_calls_with_mixed_prompts_on_two_slices(lite, lesion_slices):
    embeddings, requests = [], []
    for _, image, gt in lesion_slices:
        embedding = lite.encode(image)
        ys, xs = np.nonzero(gt)
        first = lite.decode_with_mask(embedding, Prompt(box=(float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))))
        these = _requests(gt, sigmoid(first.low_res[0]))
        embeddings += [embedding] * len(these)
        requests += these
    # one pass per (sparse tokens, multimask) over both slices: (2, F) (2, T) (3, F) (4, T) (3, T)
    assert batch_against_single(lite, lite.mask_decoder, embeddings, requests) == 5


def test_default_decode_batch_is_one_call_per_request_without_low_res(lesion_slices):
    box_only = load_model("filled-box")
    _, image, gt = lesion_slices[0]
    embedding = box_only.encode(image)
    requests = [DecodeRequest(Prompt(box=(3, 4, 20, 30))), DecodeRequest(Prompt(box=(0, 0, 5, 5)), multimask=True)]
    out = box_only.decode_batch([embedding, embedding], requests)
    for decoded, request in zip(out, requests):
        masks, scores = box_only.decode(embedding, request.prompt, request.multimask)
        assert (decoded.masks == masks).all() and (decoded.scores == scores).all() and decoded.low_res is None
    with pytest.raises(ValueError, match="as many embeddings"):
        box_only.decode_batch([embedding], requests)


# ---------------------------------------------------------------- run_unit, batched vs one call per prompt


@pytest.fixture(scope="module")
def two_slice_case(lesion_slices, tmp_path_factory):
    """A stored case of the two lesion slices: the lesion (label 1) and a disc elsewhere (label 2)."""
    from tasks.store import write_case
    from tasks.volume import Volume

    images = np.stack([image[..., 0] for _, image, _ in lesion_slices]).astype(np.float32)
    mask = np.stack([gt for _, _, gt in lesion_slices]).astype(np.uint8)
    yy, xx = np.mgrid[: mask.shape[1], : mask.shape[2]]
    cy, cx = np.argwhere(mask[0] == 0)[mask[0].size // 3]
    disc = ((yy - cy) ** 2 + (xx - cx) ** 2 <= 64) & (mask[0] == 0)
    mask[:, disc] = 2
    volume = Volume(image=images[None], mask=mask, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                    original_affine=np.eye(4).tolist())
    return write_case(tmp_path_factory.mktemp("store"), "ds", "c1", volume, {"window": [[0.0, 255.0]]})


SLICEWISE = (("medsam-box", {}), ("medsam-box-jitter", {}), ("mazurowski", {"clicks": 3}), ("microsam", {}),
             ("microsam-iterative", {"iterations": 3}), ("sammed2d", {}), ("sammed2d-iter", {"iter_points": 3}))


def test_run_unit_batched_gives_the_rows_of_one_call_per_prompt(lite, two_slice_case):
    from records.units import PlannedObject
    from tasks.evaluate_unit import PlannedSpec, RunStamp, run_unit
    from tasks.protocols import get_protocol

    specs = {}
    for name, options in SLICEWISE:
        protocol = get_protocol(name, **options)
        specs.update({spec.id: PlannedSpec(spec, protocol) for spec in protocol.specs})
    objects = [PlannedObject(z, label, f"t{label}", "MR", "brain", tuple(specs)) for z in (0, 1) for label in (1, 2)]
    stamp = RunStamp("run-1", "test")
    assert not lite.batches_decoding  # on a CPU the unit decodes one prompt per call by default
    batched = run_unit(two_slice_case, "ds", "c1", objects, lite, specs, stamp, batched=True)
    single = run_unit(two_slice_case, "ds", "c1", objects, lite, specs, stamp, batched=False)

    assert batched.encoder_calls == single.encoder_calls == 2
    assert batched.decoding.requests == single.decoding.requests
    assert batched.decoding.decoded == single.decoding.decoded == single.decoding.calls
    assert batched.decoding.calls < single.decoding.calls / 10  # a few decode_batch calls for the whole unit
    timing = {"encode_s", "decode_s", "model_score"}
    assert len(batched.rows) == len(single.rows) > 100
    for b, s in zip(batched.rows, single.rows):
        b_row, s_row = dataclasses.asdict(b), dataclasses.asdict(s)
        assert {k: v for k, v in b_row.items() if k not in timing} == {k: v for k, v in s_row.items() if k not in timing}
        assert b.model_score == pytest.approx(s.model_score, abs=1e-5)
    assert {r.protocol for r in batched.rows} == {spec.spec.name for spec in specs.values()}
    assert [dataclasses.asdict(r) for r in batched.instances] == [dataclasses.asdict(r) for r in single.instances]
    assert len(batched.instances) == 2 * sum(p.spec.steps for p in specs.values() if p.spec.params.get("instances"))


# ---------------------------------------------------------------- run_unit, several slices per encoder pass


class PassCountingBox(FilledBox):
    """The filled-box baseline recording how many slices each encoder pass took (plumbing only: the
    baseline has no network, so this tests how run_unit groups slices, not a model's batch)."""

    def __init__(self) -> None:
        self.passes: list[int] = []

    def encode_prepared(self, prepared):
        self.passes.append(len(prepared))
        return super().encode_prepared(prepared)


@pytest.fixture(scope="module")
def five_slice_case(tmp_path_factory):
    """A synthetic 5-slice case, one square object per slice (its size varies with the slice)."""
    from tasks.store import write_case
    from tasks.volume import Volume

    images = np.zeros((5, 48, 64), np.float32)
    mask = np.zeros((5, 48, 64), np.uint8)
    for z in range(5):
        mask[z, 10 : 20 + 2 * z, 12 : 24 + z] = 1
        images[z][mask[z] == 1] = 200.0
    volume = Volume(image=images[None], mask=mask, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                    original_affine=np.eye(4).tolist())
    return write_case(tmp_path_factory.mktemp("store5"), "ds", "c5", volume, {"window": [[0.0, 255.0]]})


def test_run_unit_encodes_encoder_batch_slices_per_pass_with_the_same_rows(five_slice_case):
    from records.units import PlannedObject
    from tasks.evaluate_unit import PlannedSpec, RunStamp, run_unit
    from tasks.protocols import get_protocol
    from tasks.settings import get_settings

    protocol = get_protocol("medsam-box")
    specs = {spec.id: PlannedSpec(spec, protocol) for spec in protocol.specs}
    objects = [PlannedObject(z, 1, "t1", "CT", "chest", tuple(specs)) for z in range(5)]
    stamp = RunStamp("run-1", "test")
    results, passes = {}, {}
    for batch in (1, 3):
        model = PassCountingBox()
        results[batch] = run_unit(five_slice_case, "ds", "c5", objects, model, specs, stamp, batched=False,
                                  encoder_batch=batch)
        passes[batch] = model.passes
    assert passes == {1: [1, 1, 1, 1, 1], 3: [3, 2]}
    assert results[1].encoder_calls == results[3].encoder_calls == 5
    timing = {"encode_s", "decode_s"}
    one, three = ([{k: v for k, v in dataclasses.asdict(r).items() if k not in timing} for r in results[b].rows]
                  for b in (1, 3))
    assert one == three and len(one) == 5 * len(specs)
    assert {r["dice"] for r in one} != {None}  # the rows were scored
    # A unit that decodes in batches (a GPU's) takes its encoder batch from the settings (8 by default).
    model = PassCountingBox()
    run_unit(five_slice_case, "ds", "c5", objects, model, specs, stamp, batched=True)
    assert get_settings().encoder_batch == 8 and model.passes == [5]


class OutOfMemoryAbove(PassCountingBox):
    """Runs out of (device) memory on a pass of more than ``fits`` slices, as torch does on a GPU."""

    def __init__(self, fits: int) -> None:
        super().__init__()
        self.fits = fits

    def encode_prepared(self, prepared):
        import torch

        if len(prepared) > self.fits:
            self.passes.append(-len(prepared))  # a failed pass
            raise torch.OutOfMemoryError(f"CUDA out of memory on {len(prepared)} slices (stand-in)")
        return super().encode_prepared(prepared)


def test_a_pass_out_of_memory_is_halved_and_the_unit_keeps_the_smaller_batch(five_slice_case):
    from records.units import PlannedObject
    from tasks.evaluate_unit import PlannedSpec, RunStamp, SliceEncoder, run_unit
    from tasks.protocols import get_protocol

    protocol = get_protocol("medsam-box")
    specs = {spec.id: PlannedSpec(spec, protocol) for spec in protocol.specs}
    objects = [PlannedObject(z, 1, "t1", "CT", "chest", tuple(specs)) for z in range(5)]
    model = OutOfMemoryAbove(fits=1)
    result = run_unit(five_slice_case, "ds", "c5", objects, model, specs, RunStamp("r", "t"), batched=False,
                      encoder_batch=3)
    # slices 0-2: 3 fails, then 1 (halved) per pass; slices 3-4 start at the kept batch of 1
    assert model.passes == [-3, 1, 1, 1, 1, 1]
    assert result.encoder_calls == 5 and len(result.rows) == 5 * len(specs)
    prepared = [model.prepare(np.zeros((48, 64, 3), np.uint8))]
    with pytest.raises(RuntimeError, match="out of memory on 1 slices"):
        SliceEncoder(OutOfMemoryAbove(fits=0), 4).encode([(0, (prepared[0], None))])
    with pytest.raises(ValueError, match="not memory"):  # any other error is the model's: never retried
        SliceEncoder(Failing(), 4).encode([(z, (prepared[0], None)) for z in range(3)])


class Failing(FilledBox):
    def encode_prepared(self, prepared):
        raise ValueError("not memory")
