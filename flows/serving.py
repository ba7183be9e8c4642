"""Serving scheduled deployments until Ctrl-C: ``samatlas serve``'s process.

``prefect.serve`` builds a ``Runner`` and leaves Ctrl-C to ``asyncio.run``, which cancels the runner's
task. That cancel was seen absorbed: in a CI run the runner went on launching a run every 5 s for a
minute after Ctrl-C, until the test killed it. Prefect stops its runner on SIGTERM another way, by
``Runner.astop`` (no new runs, the running ones cancelled, its loops ended), so here Ctrl-C takes that
way too: the first asks the runner to stop, a second interrupts at once.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence

from prefect.deployments.runner import RunnerDeployment
from prefect.runner import Runner


def serve_until_stopped(deployments: Sequence[RunnerDeployment], on_stop: Callable[[], None]) -> None:
    """Serve ``deployments`` (as ``prefect.serve`` does: their schedules paused on shutdown) until
    Ctrl-C; ``on_stop`` is called when the first Ctrl-C begins the shutdown."""
    runner = Runner(pause_on_shutdown=True)
    for deployment in deployments:
        runner.add_deployment(deployment)
    try:
        asyncio.run(_serve(runner, on_stop))
    except KeyboardInterrupt:  # the second Ctrl-C, or one before the runner had started
        pass


async def _serve(runner: Runner, on_stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task] = []  # holds the stop task, which the loop keeps only weakly

    def stop() -> None:
        loop.remove_signal_handler(signal.SIGINT)  # the next Ctrl-C raises KeyboardInterrupt
        if not runner.started:
            raise KeyboardInterrupt
        on_stop()
        stopping.append(loop.create_task(runner.astop()))

    loop.add_signal_handler(signal.SIGINT, stop)
    await runner.start()
