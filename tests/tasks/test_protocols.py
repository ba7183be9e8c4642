"""Prompt protocols on masks whose answer is known by construction, with fake predictors (no model)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from tasks.models.base import Decoded, Geometry, Prompt
from tasks.protocols import PROTOCOLS, get_protocol
from tasks.protocols.base import Context, expand_box, object_seed, tight_box
from tasks.protocols.geometry import components, edt_centre, inner_boundary_centre, padded_edt
from tasks.protocols.mazurowski import Mazurowski, oracle_index
from tasks.protocols.medsam_box import MedSAMBox, MedSAMBoxJitter
from tasks.protocols.geometry import bbox_exclusive
from tasks.protocols.microsam import MicroSAMIterative, MicroSAMPrompts, negative_region
from tasks.protocols.sammed2d import SAMMed2D, SAMMed2DIter, sigmoid

H = W = 64


# ---------------------------------------------------------------- masks


def annulus(h: int = H, w: int = W, r_in: float = 10, r_out: float = 20) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - 31.5, xx - 31.5)
    return (r >= r_in) & (r <= r_out)


def two_blobs() -> np.ndarray:
    """A 20x20 square (rows/cols 5..24) and an 8x8 square (rows/cols 40..47)."""
    m = np.zeros((H, W), bool)
    m[5:25, 5:25] = True
    m[40:48, 40:48] = True
    return m


def corner_blob() -> np.ndarray:
    """Touches the top and right image borders."""
    m = np.zeros((H, W), bool)
    m[0:10, 50:64] = True
    return m


def square() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[10:30, 10:30] = True
    return m


# ---------------------------------------------------------------- fake predictors


class Recorder:
    """Base fake predictor: remembers every (prompt, multimask) call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Prompt, bool]] = []
        self.mask_inputs: list[np.ndarray | None] = []

    def __call__(self, prompt: Prompt, multimask: bool) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append((prompt, multimask))
        masks, scores = self.outputs(prompt)
        if not multimask:
            return masks[:1], scores[:1]
        return masks, scores

    def with_mask(self, prompt: Prompt, multimask: bool, mask_input: np.ndarray | None) -> Decoded:
        """``Context.predict_with_mask``: output k's low-res logits are all k - 1 (tells which was fed back)."""
        self.mask_inputs.append(mask_input)
        masks, scores = self(prompt, multimask)
        return Decoded(masks, scores, np.stack([np.full((8, 8), k - 1.0) for k in range(len(masks))]))

    def outputs(self, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class ThreeMasks(Recorder):
    """Index 0 poor, index 1 scored best, index 2 equals the GT: default, best-score and oracle all differ."""

    def __init__(self, gt: np.ndarray) -> None:
        super().__init__()
        poor = np.zeros_like(gt)
        poor[:2, :2] = True
        medium = gt.copy()
        ys, xs = np.nonzero(gt)
        medium[ys[: len(ys) // 2], xs[: len(xs) // 2]] = False  # half of the object
        self.masks = np.stack([poor, medium, gt.copy()])
        self.scores = np.array([0.2, 0.9, 0.5])

    def outputs(self, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
        return self.masks.copy(), self.scores.copy()


class Fixed(Recorder):
    """Always the same mask (three copies) whatever the prompt."""

    def __init__(self, mask: np.ndarray) -> None:
        super().__init__()
        self.mask = mask

    def outputs(self, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
        return np.stack([self.mask] * 3), np.array([0.5, 0.5, 0.5])


class FilledBox(Recorder):
    """A box prompt's filled inclusive box (three copies); a point prompt's clicked pixels."""

    def __init__(self, shape: tuple[int, int]) -> None:
        super().__init__()
        self.shape = shape

    def outputs(self, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
        m = np.zeros(self.shape, bool)
        if prompt.box is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in prompt.box)
            m[y0 : y1 + 1, x0 : x1 + 1] = True
        for (x, y), lab in zip(prompt.points, prompt.point_labels):
            m[int(y), int(x)] = bool(lab)
        return np.stack([m] * 3), np.array([0.3, 0.3, 0.3])


def context(gt: np.ndarray, predict, seed: int = 0, geometry: Geometry | None = None, box_shift: int = 5) -> Context:
    geometry = geometry or Geometry.longest_side(*gt.shape, 256)
    return Context(gt=gt, geometry=geometry, box_shift=box_shift, predict=predict, rng=np.random.default_rng(seed),
                   predict_with_mask=predict.with_mask)


def by_name(steps) -> dict[str, list]:
    out: dict[str, list] = {}
    for s in steps:
        out.setdefault(s.protocol, []).append(s)
    return out


def prompts_json(steps) -> list[tuple[str, int, str]]:
    return [(s.protocol, s.step, s.prompt.to_json()) for s in steps]


def at_max_edt(region: np.ndarray, x: float, y: float) -> bool:
    d = padded_edt(region)
    return bool(d[int(y), int(x)] == d.max())


ALL = [
    MedSAMBox(),
    MedSAMBoxJitter(),
    Mazurowski(clicks=3),
    Mazurowski(),
    MicroSAMIterative(iterations=4),
    MicroSAMIterative(),
    MicroSAMPrompts(),
    SAMMed2D(points=3),
    SAMMed2D(),
    SAMMed2DIter(iter_points=3),
]


# ---------------------------------------------------------------- registry, names, row counts


def test_registry_and_options() -> None:
    assert {"medsam-box", "medsam-box-jitter", "mazurowski", "microsam-iterative", "sammed2d"} <= set(PROTOCOLS)
    p = get_protocol("mazurowski", clicks=4, iterations=2, points=7)
    assert isinstance(p, Mazurowski) and p.clicks == 4
    assert get_protocol("microsam-iterative", clicks=4, iterations=2).iterations == 2
    assert get_protocol("sammed2d", clicks=4, points=7).points == 7
    assert get_protocol("mazurowski").clicks == 9
    assert get_protocol("microsam-iterative").iterations == 8
    assert get_protocol("sammed2d").points == 5
    assert sum(s.steps for s in Mazurowski(clicks=9).specs) == 28


def names(protocol) -> tuple[str, ...]:
    return tuple(s.name for s in protocol.specs)


def test_recorded_names() -> None:
    assert names(Mazurowski(clicks=9)) == (
        "mazurowski-m1", "mazurowski-m1-oracle", "mazurowski-m2", "mazurowski-m2-oracle",
        "mazurowski-m3", "mazurowski-m3-oracle", "mazurowski-m4", "mazurowski-m4-oracle",
        "mazurowski-m5", "mazurowski-m5-oracle", "mazurowski-clicks", "mazurowski-clicks-oracle",
    )  # fmt: skip
    assert names(MicroSAMIterative()) == ("microsam-point", "microsam-box")
    assert names(SAMMed2D()) == ("sammed2d-box", "sammed2d-1pt", "sammed2d-points")
    assert names(MedSAMBoxJitter()) == ("medsam-box-jitter",)


def test_spec_ids_follow_exactly_the_options_that_change_a_variant() -> None:
    """Changing --clicks changes the click sequences' spec ids and not the modes'; the same options
    give the same ids in a new instance; ids differ between variants."""
    three, two, again = Mazurowski(clicks=3), Mazurowski(clicks=2), Mazurowski(clicks=3)
    ids = lambda p: {s.name: s.id for s in p.specs}  # noqa: E731
    assert ids(three) == ids(again)
    changed = {n for n in ids(three) if ids(three)[n] != ids(two)[n]}
    assert changed == {"mazurowski-clicks", "mazurowski-clicks-oracle"}
    assert len(set(ids(three).values())) == len(three.specs)
    assert three.spec("mazurowski-clicks").params["clicks"] == 3 and three.spec("mazurowski-clicks").steps == 3
    p5, p7 = SAMMed2D(points=5), SAMMed2D(points=7)
    assert {n for n in ids(p5) if ids(p5)[n] != ids(p7)[n]} == {"sammed2d-points"}
    assert ids(MicroSAMIterative(iterations=2)).keys() == ids(MicroSAMIterative()).keys()
    assert not set(ids(MicroSAMIterative(iterations=2)).values()) & set(ids(MicroSAMIterative()).values())


def test_spec_canonical_form_is_stable() -> None:
    """The id is a function of the canonical JSON alone: parameter order does not matter, values do,
    and the seeding scheme and metric convention are part of every spec."""
    from records.specs import ProtocolSpec

    a = ProtocolSpec("x", {"b": 1, "a": [1, 2]})
    b = ProtocolSpec("x", {"a": (1, 2), "b": 1})
    assert a.id == b.id and a.canonical == b.canonical and len(a.id) == 12
    assert ProtocolSpec("x", {"b": 2, "a": [1, 2]}).id != a.id
    assert {"seed", "scoring"} <= set(a.params) and a.params["scoring"]["nsd_tolerance"] == 2.0
    assert ProtocolSpec("x", {"scoring": {**a.params["scoring"], "nsd_tolerance": 1.0}, "b": 1, "a": [1, 2]}).id != a.id
    with pytest.raises(TypeError):
        ProtocolSpec("x", {"a": object()})


@pytest.mark.parametrize("protocol", ALL, ids=lambda p: f"{p.name}-{len(p.specs)}")
@pytest.mark.parametrize("make_gt", [annulus, two_blobs, corner_blob])
def test_rows_names_and_steps(protocol, make_gt) -> None:
    gt = make_gt()
    steps = protocol.run(context(gt, ThreeMasks(gt)))
    assert len(steps) == sum(s.steps for s in protocol.specs)
    assert {s.protocol for s in steps} == set(names(protocol))
    for spec in protocol.specs:  # asking for one variant yields at least that variant, identically
        only = [s for s in protocol.run(context(gt, ThreeMasks(gt)), frozenset({spec.name})) if s.protocol == spec.name]
        assert [x.prompt for x in only] == [x.prompt for x in steps if x.protocol == spec.name]
    for name, group in by_name(steps).items():
        assert [s.step for s in group] == list(range(1, len(group) + 1)), name
    for s in steps:
        assert s.mask.shape == gt.shape and s.mask.dtype == bool
        json.loads(s.prompt.to_json())


def test_invalid_options() -> None:
    for bad in (lambda: Mazurowski(clicks=0), lambda: MicroSAMIterative(iterations=0), lambda: SAMMed2D(points=1)):
        with pytest.raises(ValueError):
            bad()


# ---------------------------------------------------------------- geometry helpers


def test_components_8_connected_and_sorted() -> None:
    m = np.zeros((10, 10), bool)
    m[0, 0] = m[1, 1] = True  # diagonal: one 8-connected component
    m[5:8, 5:8] = True
    comps = components(m)
    assert [c.sum() for c in comps] == [9, 2]
    eq = np.zeros((10, 10), bool)
    eq[0:2, 0:2] = True
    eq[6:8, 6:8] = True
    assert components(eq, ties="first")[0][0, 0] and components(eq, ties="last")[0][7, 7]


@pytest.mark.parametrize("seed", range(6))
def test_boxes_and_components_equal_the_whole_image_rules(seed: int) -> None:
    """Labelling on the mask's box, and boxes from projections, give what whole-image labelling,
    ``nonzero`` and ``regionprops`` give, equal areas and masks touching the image's edges included."""
    from skimage.measure import label, regionprops

    rng = np.random.default_rng(seed)
    m = np.zeros((90, 120), bool)
    for _ in range(rng.integers(1, 6)):  # a few squares, some of equal size, some at the border
        y, x, r = rng.integers(0, 90), rng.integers(0, 120), rng.choice([2, 3, 3, 6])
        m[max(y - r, 0) : y + r, max(x - r, 0) : x + r] = True
    labels, n = label(m, connectivity=2, return_num=True)
    areas = np.bincount(labels.ravel())[1:]
    first = [labels == i for i in sorted(range(1, n + 1), key=lambda i: -areas[i - 1])]
    last = [labels == i for _, i in sorted(zip(areas, range(1, n + 1)))][::-1]
    for got, want in ((components(m, ties="first"), first), (components(m, ties="last"), last)):
        assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want))
    ys, xs = np.nonzero(m)
    assert tight_box(m) == (xs.min(), ys.min(), xs.max(), ys.max())
    r0, c0, r1, c1 = regionprops(m.astype(np.uint8))[0].bbox
    assert bbox_exclusive(m) == (c0, r0, c1, r1)


def test_edt_centre_on_the_box_is_the_whole_image_rule() -> None:
    """The transform taken on the mask's box picks the pixel (and leaves the RNG) as on the whole image."""
    from tasks.protocols.geometry import maxima, pick

    shapes = np.random.default_rng(7)
    for n in range(200):
        mask = np.zeros((40, 50), bool)
        y, x = shapes.integers(0, 36), shapes.integers(0, 46)
        mask[y : y + shapes.integers(1, 12), x : x + shapes.integers(1, 12)] = True
        mask &= shapes.random(mask.shape) > 0.2  # ragged: several maxima, tie-breaks drawn
        a, b = np.random.default_rng(n), np.random.default_rng(n)
        assert edt_centre(mask, a) == pick(b, *maxima(padded_edt(mask)))
        assert a.random() == b.random()


def test_shared_edt_centres_click_as_edt_centre_and_transform_a_repeated_mask_once(monkeypatch) -> None:
    """One object's steps share their masks' maxima: the same clicks and generator states as
    edt_centre's, with one transform per distinct mask (the empty one included)."""
    from tasks.protocols import geometry

    shapes = np.random.default_rng(3)
    masks = []
    for _ in range(6):
        mask = np.zeros((30, 40), bool)
        y, x = shapes.integers(0, 22), shapes.integers(0, 31)
        mask[y : y + 8, x : x + 9] = shapes.random((8, 9)) > 0.3
        masks.append(mask)
    masks.append(np.zeros((30, 40), bool))
    sequence = masks + [m.copy() for m in masks[::-1]]  # every mask twice, as new arrays
    transforms = []
    monkeypatch.setattr(geometry, "padded_edt", lambda m, f=geometry.padded_edt: transforms.append(1) or f(m))
    shared, a, b = geometry.EdtCentres(), np.random.default_rng(5), np.random.default_rng(5)
    expected = [edt_centre(m, b) for m in sequence]
    del transforms[:]
    assert [shared(m, a) for m in sequence] == expected
    assert a.random() == b.random()
    assert len(transforms) == len(masks)


def test_edt_centre_of_disc_and_ring() -> None:
    yy, xx = np.mgrid[:31, :31]
    disc = np.hypot(yy - 15, xx - 15) <= 10
    assert edt_centre(disc, np.random.default_rng(0)) == (15, 15)
    ring = annulus()
    for seed in range(20):
        x, y = edt_centre(ring, np.random.default_rng(seed))
        assert ring[y, x] and at_max_edt(ring, x, y)
    x, y = inner_boundary_centre(ring)
    assert ring[y, x]


def test_edt_tie_break_uses_rng() -> None:
    sq = square()  # a 20x20 square: its EDT maximum is a 2x2 plateau
    picks = {edt_centre(sq, np.random.default_rng(s)) for s in range(40)}
    assert picks == {(19, 19), (20, 19), (19, 20), (20, 20)}


# ---------------------------------------------------------------- medsam boxes


def test_medsam_box_encloses_ring_and_clips_at_border() -> None:
    ring = annulus()
    (step,) = MedSAMBox().run(context(ring, FilledBox(ring.shape)))
    x0, y0, x1, y1 = step.prompt.box
    tx0, ty0, tx1, ty1 = tight_box(ring)
    assert x0 <= tx0 and y0 <= ty0 and x1 >= tx1 and y1 >= ty1
    assert (step.mask | ~ring).all()  # the filled box covers the ring

    gt = corner_blob()
    (step,) = MedSAMBox().run(context(gt, FilledBox(gt.shape)))
    x0, y0, x1, y1 = step.prompt.box
    assert y0 == 0 and 0 <= x0 and x1 <= W and y1 <= H


@pytest.mark.parametrize("geometry", [Geometry.longest_side(48, 64, 256), Geometry.stretch(48, 64, 1024)])
def test_jittered_box_within_tight_and_margin(geometry: Geometry) -> None:
    gt = np.zeros((48, 64), bool)
    gt[0:20, 30:64] = True  # touches the top and right borders
    gt[25:30, 10:12] = True
    shift = 20 if geometry.input_size == 1024 else 5
    tight = geometry.to_model(np.reshape(tight_box(gt), (2, 2)))
    full = geometry.to_model(np.reshape(expand_box(tight_box(gt), geometry, shift), (2, 2)))
    seen = set()
    for seed in range(200):
        (step,) = MedSAMBoxJitter().run(context(gt, FilledBox(gt.shape), seed, geometry, shift))
        box = geometry.to_model(np.reshape(step.prompt.box, (2, 2)))
        assert (box[0] <= tight[0] + 1e-9).all() and (box[0] >= full[0] - 1e-9).all()
        assert (box[1] >= tight[1] - 1e-9).all() and (box[1] <= full[1] + 1e-9).all()
        assert (box >= -1e-9).all()
        d = tight[0, 0] - box[0, 0]  # the left side is never clipped here: an integer in 0..shift
        assert abs(d - round(d)) < 1e-9
        seen.add(round(d))
    assert seen == set(range(shift + 1))


# ---------------------------------------------------------------- mazurowski modes


def test_mazurowski_modes_on_two_blobs() -> None:
    gt = two_blobs()
    big, small = gt.copy(), gt.copy()
    big[35:, :] = False
    small[:35, :] = False
    pred = FilledBox(gt.shape)
    steps = by_name(Mazurowski(clicks=2).run(context(gt, pred)))

    (m1,) = steps["mazurowski-m1"]
    ((x, y),) = m1.prompt.points
    assert big[int(y), int(x)] and m1.prompt.point_labels == (1,) and at_max_edt(big, x, y)

    (m2,) = steps["mazurowski-m2"]
    assert len(m2.prompt.points) == 2 and m2.prompt.point_labels == (1, 1)
    (x0, y0), (x1, y1) = m2.prompt.points
    assert big[int(y0), int(x0)] and small[int(y1), int(x1)]

    (m3,) = steps["mazurowski-m3"]
    assert m3.prompt.box == (5, 5, 24, 24)

    (m4,) = steps["mazurowski-m4"]
    assert (m4.mask == gt).all()  # OR of the two filled boxes
    assert json.loads(m4.prompt.to_json()) == {"boxes": [[5, 5, 24, 24], [40, 40, 47, 47]]}
    boxes = [p.box for p, _ in pred.calls if p.box is not None]
    assert (5, 5, 24, 24) in boxes and (40, 40, 47, 47) in boxes  # one call per box

    (m5,) = steps["mazurowski-m5"]
    assert m5.prompt.box == (5, 5, 47, 47)
    assert all(mm for _, mm in pred.calls)  # multimask everywhere


def test_mazurowski_at_most_three_components() -> None:
    gt = np.zeros((H, W), bool)
    for i, size in enumerate((9, 7, 5, 3)):
        gt[2 + 15 * i : 2 + 15 * i + size, 2 : 2 + size] = True
    steps = by_name(Mazurowski(clicks=1).run(context(gt, FilledBox(gt.shape))))
    (m2,) = steps["mazurowski-m2"]
    assert len(m2.prompt.points) == 3
    assert all(y < 45 for _, y in m2.prompt.points)  # the smallest square (rows 47..49) is left out
    (m4,) = steps["mazurowski-m4"]
    assert len(json.loads(m4.prompt.to_json())["boxes"]) == 3


def test_mazurowski_default_and_oracle_choice() -> None:
    gt = annulus()
    pred = ThreeMasks(gt)
    steps = by_name(Mazurowski(clicks=2).run(context(gt, pred)))
    for mode in ("m1", "m2", "m3", "m4", "m5"):
        (d,) = steps[f"mazurowski-{mode}"]
        (o,) = steps[f"mazurowski-{mode}-oracle"]
        assert (d.mask == pred.masks[0]).all() and d.score == 0.2  # first output, not the best score
        assert (o.mask == gt).all() and o.score == 0.5
    assert (steps["mazurowski-clicks"][0].mask == pred.masks[0]).all()
    assert (steps["mazurowski-clicks-oracle"][1].mask == gt).all()


def test_oracle_index_reference_quirk() -> None:
    gt = square()
    empty = np.zeros_like(gt)
    assert oracle_index(np.stack([empty, gt, gt]), gt) == 1  # first of the best
    assert oracle_index(np.stack([empty, empty, empty]), gt) == 2  # all IoU 0: the last (index -1)


# ---------------------------------------------------------------- mazurowski clicks


def test_mazurowski_first_click_on_whole_mask_ring() -> None:
    gt = annulus()
    steps = by_name(Mazurowski(clicks=1).run(context(gt, ThreeMasks(gt))))
    for name in ("mazurowski-clicks", "mazurowski-clicks-oracle"):
        ((x, y),) = steps[name][0].prompt.points
        assert gt[int(y), int(x)] and at_max_edt(gt, x, y)


def test_mazurowski_first_click_whole_mask_not_largest_component() -> None:
    gt = np.zeros((H, W), bool)
    gt[2:6, 2:62] = True  # the largest component: a thin bar (240 px)
    gt[20:34, 20:34] = True  # a smaller but thicker square (196 px)
    steps = by_name(Mazurowski(clicks=1).run(context(gt, ThreeMasks(gt))))
    ((x, y),) = steps["mazurowski-clicks"][0].prompt.points
    assert 20 <= y < 34  # inscribed circle largest in the square
    ((x, y),) = steps["mazurowski-m1"][0].prompt.points
    assert 2 <= y < 6  # M1 uses the largest-area component


def test_mazurowski_second_click_in_false_negative() -> None:
    gt = square()
    wrong = gt.copy()
    wrong[:, 20:] = False  # right half of the object missed
    fn = gt & ~wrong
    pred = Fixed(wrong)
    steps = by_name(Mazurowski(clicks=3).run(context(gt, pred)))
    for name in ("mazurowski-clicks", "mazurowski-clicks-oracle"):
        s1, s2, s3 = steps[name]
        (x, y), label = s2.prompt.points[1], s2.prompt.point_labels[1]
        assert fn[int(y), int(x)] and at_max_edt(fn, x, y) and label == 1
        assert s2.prompt.points[0] == s1.prompt.points[0]  # all clicks re-sent
        assert s3.prompt.points[:2] == s2.prompt.points and len(s3.prompt.points) == 3
        assert s3.prompt.point_labels[:2] == s2.prompt.point_labels
    assert all(mm for _, mm in pred.calls)


def test_mazurowski_second_click_in_false_positive() -> None:
    gt = square()
    wrong = gt.copy()
    wrong[40:60, 36:60] = True  # a spurious blob
    fp = wrong & ~gt
    steps = by_name(Mazurowski(clicks=2).run(context(gt, Fixed(wrong))))
    (x, y), label = steps["mazurowski-clicks"][1].prompt.points[1], steps["mazurowski-clicks"][1].prompt.point_labels[1]
    assert fp[int(y), int(x)] and at_max_edt(fp, x, y) and label == 0


def test_mazurowski_oracle_sequence_follows_its_own_mask() -> None:
    gt = square()
    pred = ThreeMasks(gt)  # index 2 is perfect: the oracle's error region is empty, index 0's is not
    steps = by_name(Mazurowski(clicks=2).run(context(gt, pred)))
    (x, y), lab = steps["mazurowski-clicks"][1].prompt.points[1], steps["mazurowski-clicks"][1].prompt.point_labels[1]
    err = pred.masks[0] ^ gt
    assert err[int(y), int(x)] and lab == int(gt[int(y), int(x)])
    # oracle: empty error region, every pixel ties; the label still comes from the GT
    (x, y), lab = steps["mazurowski-clicks-oracle"][1].prompt.points[1], steps["mazurowski-clicks-oracle"][1].prompt.point_labels[1]
    assert lab == int(gt[int(y), int(x)])


# ---------------------------------------------------------------- micro-sam


def test_microsam_starts() -> None:
    gt = two_blobs()
    pred = ThreeMasks(gt)
    steps = by_name(MicroSAMIterative(iterations=3).run(context(gt, pred)))
    point, box = steps["microsam-point"], steps["microsam-box"]
    ((x, y),) = point[0].prompt.points
    assert gt[int(y), int(x)] and point[0].prompt.box is None
    assert (point[0].mask == pred.masks[1]).all() and point[0].score == 0.9  # best predicted score
    assert box[0].prompt.box == (5, 5, 48, 48) and box[0].prompt.points == ()  # regionprops bbox, max exclusive
    for s in box:
        assert s.prompt.box == (5, 5, 48, 48)  # the box stays
    multimask = [mm for _, mm in pred.calls]
    assert multimask == [True, False, False, False, False, False]  # only the single starting point

    ring = annulus()
    (x, y), = MicroSAMIterative(iterations=1).run(context(ring, ThreeMasks(ring)))[0].prompt.points
    assert ring[int(y), int(x)]


def test_microsam_corrective_points() -> None:
    gt = square()
    wrong = gt.copy()
    wrong[:, 20:] = False
    wrong[40:50, 40:50] = True
    fn, fp = gt & ~wrong, wrong & ~gt
    steps = by_name(MicroSAMIterative(iterations=3).run(context(gt, Fixed(wrong))))
    for name, start in (("microsam-point", 1), ("microsam-box", 0)):
        s1, s2, s3 = steps[name]
        assert len(s2.prompt.points) == start + 2 and len(s3.prompt.points) == start + 4
        assert s3.prompt.points[: start + 2] == s2.prompt.points  # all points re-sent
        (px, py), (nx, ny) = s2.prompt.points[start:]
        assert s2.prompt.point_labels[start:] == (1, 0)
        assert fn[int(py), int(px)] and fp[int(ny), int(nx)]


def test_microsam_fallbacks_for_perfect_prediction() -> None:
    gt = square()
    steps = by_name(MicroSAMIterative(iterations=2).run(context(gt, Fixed(gt))))
    s2 = steps["microsam-box"][1]
    (px, py), (nx, ny) = s2.prompt.points
    assert gt[int(py), int(px)]  # no FN: a true-positive pixel
    assert not gt[int(ny), int(nx)] and 7 <= nx <= 32 and 7 <= ny <= 32  # box grown by 3 minus the object


def chebyshev_to(mask: np.ndarray) -> np.ndarray:
    """Brute force: each pixel's chessboard distance to the nearest pixel of ``mask`` (what 5 dilations
    by a 3x3 square reach is distance <= 5)."""
    ys, xs = np.nonzero(mask)
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    return np.min(np.maximum(abs(yy[..., None] - ys), abs(xx[..., None] - xs)), axis=-1)


def test_microsam_negative_ring_against_brute_force() -> None:
    for gt in (annulus(), two_blobs(), corner_blob(), square()):
        y0, x0 = np.nonzero(gt)[0].min(), np.nonzero(gt)[1].min()
        y1, x1 = np.nonzero(gt)[0].max(), np.nonzero(gt)[1].max()
        yy, xx = np.mgrid[:H, :W]
        in_box = (yy >= y0 - 5) & (yy <= y1 + 5) & (xx >= x0 - 5) & (xx <= x1 + 5)
        np.testing.assert_array_equal(negative_region(gt), in_box & (chebyshev_to(gt) > 5))
    assert not negative_region(square()).any()  # a rectangle dilated by 5 fills its box grown by 5


def test_microsam_single_shot_settings() -> None:
    gt = annulus()
    pred = ThreeMasks(gt)
    protocol = MicroSAMPrompts()
    assert [s.name for s in protocol.specs] == ["microsam-p1-n0", "microsam-p2-n4", "microsam-p4-n8", "microsam-box-only"]
    steps = {s.protocol: s for s in protocol.run(context(gt, pred))}
    centre = tuple(float(v) for v in inner_boundary_centre(gt))
    ring = negative_region(gt)
    assert ring.any()  # the hole and the box corners
    for name, n, m in (("microsam-p1-n0", 1, 0), ("microsam-p2-n4", 2, 4), ("microsam-p4-n8", 4, 8)):
        prompt = steps[name].prompt
        assert prompt.box is None and prompt.point_labels == (1,) * n + (0,) * m
        assert prompt.points[0] == centre
        assert all(gt[int(y), int(x)] for x, y in prompt.points[:n])
        negatives = prompt.points[n:]
        assert all(ring[int(y), int(x)] for x, y in negatives) and len(set(negatives)) == m  # without replacement
    assert steps["microsam-box-only"].prompt == Prompt(box=tuple(float(v) for v in bbox_exclusive(gt)))
    # multimask (best predicted score) for the single positive point only
    assert [mm for _, mm in pred.calls] == [True, False, False, False]
    assert (steps["microsam-p1-n0"].mask == pred.masks[1]).all()
    assert (steps["microsam-p2-n4"].mask == pred.masks[0]).all()
    # the same object and seed: p1-n0 is step 1 of microsam-point, box-only step 1 of microsam-box
    iterative = by_name(MicroSAMIterative(iterations=1).run(context(gt, ThreeMasks(gt))))
    assert iterative["microsam-point"][0].prompt == steps["microsam-p1-n0"].prompt
    assert iterative["microsam-box"][0].prompt == steps["microsam-box-only"].prompt


def test_microsam_negatives_top_up_from_background() -> None:
    gt = square()  # empty ring: every negative comes from the whole background
    steps = {s.protocol: s for s in MicroSAMPrompts().run(context(gt, Fixed(gt)))}
    negatives = steps["microsam-p4-n8"].prompt.points[4:]
    assert len(set(negatives)) == 8 and not any(gt[int(y), int(x)] for x, y in negatives)
    corner = np.zeros((H, W), bool)  # an L of three pixels: its ring is the one box corner 6 px from all three
    corner[10, 10] = corner[10, 11] = corner[11, 10] = True
    assert np.argwhere(negative_region(corner)).tolist() == [[16, 16]]
    prompt = {s.protocol: s for s in MicroSAMPrompts().run(context(corner, Fixed(corner)))}["microsam-p4-n8"].prompt
    assert sorted(prompt.points[1:4]) == [(10.0, 10.0), (10.0, 11.0), (11.0, 10.0)]  # 3 extra positives, no repeat
    negatives = prompt.points[4:]
    assert negatives[0] == (16.0, 16.0) and len(negatives) == 8  # the ring first, then topped up
    assert not any(corner[int(y), int(x)] for x, y in negatives)
    # one background pixel, four negatives asked: the prompt keeps what exists
    full = np.ones((H, W), bool)
    full[0, 0] = False
    prompt = {s.protocol: s for s in MicroSAMPrompts().run(context(full, Fixed(full)))}["microsam-p2-n4"].prompt
    assert prompt.point_labels == (1, 1, 0) and prompt.points[2] == (0.0, 0.0)


# ---------------------------------------------------------------- sam-med2d


def test_sammed2d_prompts() -> None:
    gt = two_blobs()
    pred = ThreeMasks(gt)
    steps = by_name(SAMMed2D(points=5).run(context(gt, pred)))
    (box,) = steps["sammed2d-box"]
    assert box.prompt.box == (5, 5, 25, 25) and box.prompt.points == ()  # largest component, max exclusive
    (one,) = steps["sammed2d-1pt"]
    ((x, y),) = one.prompt.points
    assert gt[int(y), int(x)] and one.prompt.point_labels == (1,)
    (five,) = steps["sammed2d-points"]
    assert sorted(five.prompt.point_labels) == [0, 0, 0, 1, 1]
    for (x, y), lab in zip(five.prompt.points, five.prompt.point_labels):
        assert gt[int(y), int(x)] == bool(lab)
    for s in (box, one, five):
        assert (s.mask == pred.masks[1]).all() and s.score == 0.9  # best predicted score
    assert all(mm for _, mm in pred.calls)
    (three,) = by_name(SAMMed2D(points=3).run(context(gt, pred)))["sammed2d-points"]
    assert sorted(three.prompt.point_labels) == [0, 0, 1]


def test_sammed2d_iter_error_points_and_mask_feedback() -> None:
    gt = square()
    wrong = gt.copy()
    wrong[:, 20:] = False
    wrong[40:50, 40:50] = True
    pred = Fixed(wrong)
    pred.outputs = lambda prompt: (np.stack([gt, wrong, gt]), np.array([0.1, 0.9, 0.2]))  # index 1 scores best
    steps = SAMMed2DIter(iter_points=4).run(context(gt, pred, seed=3))
    assert [s.step for s in steps] == [1, 2, 3, 4] and {s.protocol for s in steps} == {"sammed2d-iter"}
    ((x, y),) = steps[0].prompt.points
    assert gt[int(y), int(x)] and steps[0].prompt.point_labels == (1,) and steps[0].prompt.box is None
    error = wrong != gt
    for k in range(1, 4):
        assert steps[k].prompt.points[:k] == steps[k - 1].prompt.points  # every point re-sent
        (x, y), label = steps[k].prompt.points[k], steps[k].prompt.point_labels[k]
        assert error[int(y), int(x)] and label == int(gt[int(y), int(x)])  # FN positive, FP negative
    assert all(mm for _, mm in pred.calls) and all((s.mask == wrong).all() for s in steps)
    # no mask input at step 1, then the sigmoid of the best-scoring output's low-res logits (all 0 for index 1)
    assert pred.mask_inputs[0] is None
    for fed in pred.mask_inputs[1:]:
        np.testing.assert_allclose(fed, np.full((8, 8), 0.5))
    labels = {tuple(s.point_labels[1:]) for s in (SAMMed2DIter(9).run(context(gt, Fixed(wrong), seed))[-1].prompt for seed in range(5))}
    assert {0, 1} <= {v for t in labels for v in t}  # both kinds of error get clicked


def test_sammed2d_iter_without_error_sends_not_a_point() -> None:
    gt = square()
    steps = SAMMed2DIter(iter_points=2).run(context(gt, Fixed(gt)))
    assert steps[1].prompt.point_labels == (1, -1)
    np.testing.assert_allclose(sigmoid(np.array([-800.0, 0.0, 800.0])), [0.0, 0.5, 1.0])


def test_sammed2d_iter_needs_a_mask_input() -> None:
    gt = square()
    ctx = Context(gt, Geometry.longest_side(*gt.shape, 256), 5, Fixed(gt), np.random.default_rng(0))
    with pytest.raises(ValueError, match="mask input"):
        SAMMed2DIter().run(ctx)


def test_sammed2d_labels_shuffled() -> None:
    gt = annulus()
    orders = {SAMMed2D().run(context(gt, ThreeMasks(gt), seed))[2].prompt.point_labels for seed in range(30)}
    assert len(orders) > 1


# ---------------------------------------------------------------- border


@pytest.mark.parametrize("protocol", ALL, ids=lambda p: f"{p.name}-{len(p.specs)}")
def test_border_prompts_inside_image(protocol) -> None:
    gt = corner_blob()
    for seed in range(5):
        for s in protocol.run(context(gt, Fixed(gt | np.roll(gt, 5, axis=0)), seed)):
            for x, y in s.prompt.points:
                assert 0 <= x < W and 0 <= y < H and float(x).is_integer() and float(y).is_integer()
            boxes = json.loads(s.prompt.to_json()).get("boxes", [s.prompt.box] if s.prompt.box else [])
            for x0, y0, x1, y1 in boxes:
                assert 0 <= x0 <= x1 <= W and 0 <= y0 <= y1 <= H


# ---------------------------------------------------------------- determinism


def run_object(protocol, gt: np.ndarray, key: tuple) -> list:
    rng = np.random.default_rng(object_seed(*key, protocol.name))
    predict = Fixed(np.roll(gt, 6, axis=1))
    ctx = Context(gt, Geometry.longest_side(*gt.shape, 256), 5, predict, rng, predict.with_mask)
    return prompts_json(protocol.run(ctx))


@pytest.mark.parametrize("protocol", ALL, ids=lambda p: f"{p.name}-{len(p.specs)}")
def test_same_seed_same_prompts_and_no_global_rng(protocol) -> None:
    gt = annulus()
    np.random.seed(123)
    random.seed(123)
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()
    a = run_object(protocol, gt, ("ds", "case1", 3, 1))
    b = run_object(protocol, gt, ("ds", "case1", 3, 1))
    assert a == b
    assert (np.random.get_state()[1] == np_state).all() and random.getstate() == py_state


@pytest.mark.parametrize(
    "protocol", [MedSAMBoxJitter(), MicroSAMIterative(iterations=3), MicroSAMPrompts(), SAMMed2D(), SAMMed2DIter()],
    ids=lambda p: p.name,
)
def test_different_objects_different_random_prompts(protocol) -> None:
    gt = annulus()
    keys = [("ds", "case1", 3, 1), ("ds", "case1", 3, 2), ("ds", "case2", 3, 1), ("ds", "case1", 4, 1)]
    results = [run_object(protocol, gt, k) for k in keys]
    assert len({json.dumps(r) for r in results}) == len(keys)


def test_order_independent() -> None:
    gts = {("ds", f"case{i}", i, 1): np.roll(annulus(), 3 * i, axis=1) for i in range(4)}
    for protocol in (Mazurowski(clicks=3), MicroSAMIterative(iterations=3), MicroSAMPrompts(), SAMMed2D(),
                     SAMMed2DIter(), MedSAMBoxJitter()):
        forward = {k: run_object(protocol, g, k) for k, g in gts.items()}
        backward = {k: run_object(protocol, gts[k], k) for k in reversed(list(gts))}
        assert forward == backward


def test_prefix_stable_across_click_counts() -> None:
    gt = annulus()
    short = by_name(Mazurowski(clicks=3).run(context(gt, Fixed(np.roll(gt, 6, axis=1)), 7)))
    long = by_name(Mazurowski(clicks=6).run(context(gt, Fixed(np.roll(gt, 6, axis=1)), 7)))
    assert [s.prompt for s in short["mazurowski-clicks"]] == [s.prompt for s in long["mazurowski-clicks"][:3]]
    assert [s.prompt for s in short["mazurowski-m1"]] == [s.prompt for s in long["mazurowski-m1"]]
