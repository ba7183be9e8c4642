"""Prefetching a unit's slices: order kept, reads really ahead of the consumer, errors where they belong,
no thread left behind."""

from __future__ import annotations

import threading
from contextlib import closing

import pytest

from tasks.prefetch import prefetched


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("samatlas-prefetch")]


def test_reads_run_ahead_of_the_consumer_and_come_back_in_order():
    started = {k: threading.Event() for k in range(8)}

    def read(k: int) -> int:
        started[k].set()
        return k * k

    got = []
    for k, value in prefetched(range(8), read, ahead=2):
        got.append((k, value))
        if k + 1 < 8:  # read k+1 is under way while k is being worked on (a plain loop would wait forever)
            assert started[k + 1].wait(5)
    assert got == [(k, k * k) for k in range(8)]
    assert prefetch_threads() == []


def test_a_failed_read_raises_at_its_own_slice():
    def read(k: int) -> int:
        if k == 3:
            raise OSError("slice 3: chunk unreadable")
        return k

    got = []
    with pytest.raises(OSError, match="slice 3: chunk unreadable"):
        for k, _ in prefetched(range(6), read):
            got.append(k)
    assert got == [0, 1, 2]


def test_stopping_early_leaves_no_thread():
    with closing(prefetched(range(100), lambda k: k)) as reads:
        assert [next(reads) for _ in range(2)] == [(0, 0), (1, 1)]
    assert prefetch_threads() == []


def test_ahead_must_be_positive():
    with pytest.raises(ValueError, match="ahead and threads must be at least 1"):
        list(prefetched(range(3), lambda k: k, ahead=0))


def test_several_threads_read_at_once_and_keep_the_order():
    """With ``threads=3`` three reads are under way together (each waits for the other two), and the
    values still come back in key order."""
    barrier = threading.Barrier(3, timeout=5)

    def read(k: int) -> int:
        if k < 3:
            barrier.wait()  # a single reader thread would stall here and break the barrier
        return -k

    assert list(prefetched(range(6), read, ahead=3, threads=3)) == [(k, -k) for k in range(6)]
    assert prefetch_threads() == []
    with pytest.raises(ValueError, match="threads must be at least 1"):
        list(prefetched(range(3), lambda k: k, threads=0))
