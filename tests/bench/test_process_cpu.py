"""bench/process_cpu.py: a command's CPU seconds split by the role of each process it starts."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

# Loaded from its file: bench/ on sys.path would let bench/catalog.py shadow the catalog package
# for every test collected after this one.
_SPEC = importlib.util.spec_from_file_location(
    "process_cpu", Path(__file__).resolve().parents[2] / "bench" / "process_cpu.py")
process_cpu = sys.modules["process_cpu"] = importlib.util.module_from_spec(_SPEC)  # its dataclass looks itself up
_SPEC.loader.exec_module(process_cpu)
COMMAND, OTHER, SERVER, WORKER = process_cpu.COMMAND, process_cpu.OTHER, process_cpu.SERVER, process_cpu.WORKER
ProcessTreeCpu = process_cpu.ProcessTreeCpu

# A parent that burns about 0.4 CPU s itself and starts a multiprocessing "spawn" child (as Dask's
# nanny starts a worker) that burns about 0.8 CPU s, then waits for it.
SCRIPT = """
import multiprocessing, time

def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass

if __name__ == "__main__":
    burn(0.4)
    child = multiprocessing.get_context("spawn").Process(target=burn, args=(0.8,))
    child.start()
    child.join()
"""


def test_cpu_seconds_are_split_by_role_and_kept_after_a_process_ends(tmp_path):
    script = tmp_path / "tree.py"
    script.write_text(SCRIPT)
    started = time.time()
    command = subprocess.Popen([sys.executable, str(script)])
    sampler = ProcessTreeCpu(command.pid, interval=0.05)
    assert command.wait(timeout=60) == 0
    sampler.stop()
    final = sampler.samples[-1].cpu_s
    assert set(final) == {COMMAND, SERVER, WORKER, OTHER}
    assert 0.35 <= final[COMMAND] < 0.8  # its own burn (plus its start), not its child's
    assert final[WORKER] >= 0.75  # the spawned child's burn, though the child ended before the last sample
    assert final[SERVER] == 0.0
    assert sampler.at(started - 1.0) == dict.fromkeys(final, 0.0)  # nothing before the first sample
    mid = sampler.samples[len(sampler.samples) // 2]
    assert sampler.at(mid.at) == mid.cpu_s
