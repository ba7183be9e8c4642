"""Measurement (not a test): peak memory of SAM 2 video frames made lazily against the package holding them all.

SAM 2's ``init_state`` loads every frame of the video before tracking: ``load_video_frames`` fills one
float32 (N, 3, S, S) tensor (12 MiB a frame at S = 1024). samatlas's ``VideoSession`` hands the package
a :class:`~tasks.models.sam2_video.LazyFrames` instead, which makes a frame from the store when the
package asks for it and keeps none. On a synthetic 512x512 x 300-slice volume (slices made on demand,
as a unit reads them from the store), each variant walks the frames in propagation order:

``package``  the package's own loader (``load_video_frames_from_jpg_images``, synchronous, as
             ``init_state`` calls it) over a folder of empty ``<n>.jpg`` placeholders, with
             ``PIL.Image.open`` patched to return the in-memory slices (no JPEG written), then every
             frame indexed once as propagation would;
``bounded``  ``LazyFrames`` over the same slices, every frame indexed once and dropped, as the
             package's one-frame feature cache drops it when the next frame is encoded.

What is measured: the frame holding only. No network runs (a randomly initialised Hiera-tiny takes
~7 s a frame at 1024 on this 2-core CPU, 35 min for one pass of 300 frames), so neither variant
includes the image encoder's activations, the package's one cached backbone output, or the tracked
frames' stored outputs (0.75 MiB a frame at 1024 in the package; at most ``memory_reach`` + 1 = 16 of
them in a session, which drops those behind its memory reach).

Each variant runs in a fresh child process (this script with ``--child``) and reports its peak RSS
(``ru_maxrss``, KiB on Linux) after its imports and after the walk, the frames it made, and a checksum
of the frames (equal in both: the same pixels). Prints the figures, then ONE JSON line.

    python bench/sam2_memory.py [--depth 300] [--image-size 1024]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SLICE = (512, 512)


def synthetic_slice(z: int) -> np.ndarray:
    """Slice ``z`` as the (H, W, 3) uint8 image a unit hands the model: a ramp shifted by ``z``."""
    ramp = (np.arange(SLICE[1], dtype=np.int64)[None, :] + np.arange(SLICE[0])[:, None] + z) % 256
    return np.repeat(ramp.astype(np.uint8)[..., None], 3, axis=-1)


def peak_rss_mib() -> float:
    """This process's peak resident set so far (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def package_frames(depth: int, image_size: int, folder: Path):
    """The package's own hold-every-frame loading of the synthetic volume (in-memory slices)."""
    from PIL import Image

    import sam2.utils.misc as misc

    for z in range(depth):
        (folder / f"{z}.jpg").touch()
    misc.Image.open = lambda path: Image.fromarray(synthetic_slice(int(Path(path).stem)))
    frames, _, _ = misc.load_video_frames_from_jpg_images(str(folder), image_size, offload_video_to_cpu=True)
    return frames


def child(variant: str, depth: int, image_size: int) -> None:
    """One variant, in this (fresh) process: index every frame in order, print one JSON line."""
    import torch

    from tasks.models.sam2_video import LazyFrames

    torch.set_num_threads(1)
    before = peak_rss_mib()
    with tempfile.TemporaryDirectory(prefix="sam2-frames-") as folder:
        frames = package_frames(depth, image_size, Path(folder)) if variant == "package" else \
            LazyFrames(synthetic_slice, depth, image_size)
        checksum = 0.0
        for z in range(len(frames)):
            checksum += float(frames[z][:, ::64, ::64].sum())
        made = depth if variant == "package" else len(frames.loads)
        after = peak_rss_mib()
    print(json.dumps({"variant": variant, "before_mib": round(before, 1), "peak_mib": round(after, 1),
                      "frames_made": made, "checksum": round(checksum, 3)}))


def run_child(variant: str, depth: int, image_size: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", variant, "--depth", str(depth),
                           "--image-size", str(image_size)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=("package", "bounded"))
    parser.add_argument("--depth", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=1024)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.depth, args.image_size)
        return
    results = {v: run_child(v, args.depth, args.image_size) for v in ("package", "bounded")}
    for v, r in results.items():
        print(f"{v:8s} peak RSS {r['peak_mib']:8.1f} MiB (after imports {r['before_mib']:.1f}), "
              f"{r['frames_made']} frames made, checksum {r['checksum']}")
    package, bounded = results["package"], results["bounded"]
    if abs(package["checksum"] - bounded["checksum"]) > 1e-3 * max(1.0, abs(package["checksum"])):
        raise SystemExit("the two variants saw different frames")
    print(json.dumps({
        "bench": "sam2_memory", "measured": "frame holding only", "depth": args.depth, "image_size": args.image_size,
        "package_peak_mib": package["peak_mib"], "bounded_peak_mib": bounded["peak_mib"],
        "ratio": round(package["peak_mib"] / bounded["peak_mib"], 2),
        "frame_mib": round(3 * args.image_size ** 2 * 4 / 2 ** 20, 2),
    }))


if __name__ == "__main__":
    main()
