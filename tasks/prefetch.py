"""Reading the next slices of a unit while the model works on the current one.

On a GPU the encoder takes milliseconds, so a slice's Zarr read and windowing (a few milliseconds each,
mostly decompression, which releases the GIL) would stall it; one reader thread a few slices ahead
hides them. On a CPU the reads are about 1 % of a unit and the thread costs nothing noticeable.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

K = TypeVar("K")
T = TypeVar("T")

AHEAD = 2  # slices read ahead: enough to cover one read's jitter, little memory (a slice and its mask each)
PREPARE_THREADS = 4
"""Read-ahead threads of a unit whose model runs on a GPU: each slice's read, windowing and the model's
CPU stage (:meth:`~tasks.models.base.SegmentationModel.prepare`, 5 to 25 ms a slice) would otherwise
bound a GPU encoder that takes a few ms a slice. On a CPU one thread, as the encoder is the bound there."""


def prefetched(keys: Iterable[K], read: Callable[[K], T], ahead: int = AHEAD, threads: int = 1) -> Iterator[tuple[K, T]]:
    """``(key, read(key))`` for each key in order, each read started up to ``ahead`` keys early on
    ``threads`` background threads. A read's exception is raised where its key is reached; reads not yet
    consumed when the loop stops early are cancelled or left to finish, and the threads end with the
    generator."""
    if ahead < 1 or threads < 1:
        raise ValueError(f"ahead and threads must be at least 1, got {ahead} and {threads}")
    pending: deque[tuple[K, Future[T]]] = deque()
    todo = iter(keys)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="samatlas-prefetch") as pool:
        try:
            for key in todo:
                pending.append((key, pool.submit(read, key)))
                if len(pending) > ahead:
                    done_key, future = pending.popleft()
                    yield done_key, future.result()
            while pending:
                done_key, future = pending.popleft()
                yield done_key, future.result()
        finally:
            for _, future in pending:
                future.cancel()
