"""The flow process plans, submits and commits without torch: only workers build models (torch's import
alone is 2.3 s of every command here)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKED = textwrap.dedent("""
    import sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"the flow process imported {name}")

    sys.meta_path.insert(0, NoTorch())
    import flows.cli, flows.evaluate, flows.cluster, flows.plan
    from tasks.models import check_model_args, worker_model
    from tasks.models.weights import CheckpointError
    check_model_args("litemedsam", None)
""")


def test_the_flow_process_imports_no_torch():
    done = subprocess.run([sys.executable, "-c", BLOCKED], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
