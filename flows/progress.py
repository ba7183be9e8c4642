"""Progress of a flow run where its user looks: a bar on a terminal, plain lines in a log, a Prefect artifact.

On a terminal, rich draws a live bar (units, slices, rows, rate, ETA). In a log (stderr not a
terminal: CI, ``nohup``, a served deployment) a live bar would write control codes, so the bar is
disabled and a plain line is printed when a stage starts and ends and every ``PLAIN_EVERY_S``
seconds between; the rate and the ETA are the stage's mean so far. The bar prints on the console of
Prefect's log handler, so log lines of the flow print above it instead of through it.

The Prefect progress artifact (0 to 100) moves with the work, updated at most every
``ARTIFACT_EVERY_S`` seconds (each update is an API call) and at every stage's end.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.logging.handlers import PrefectConsoleHandler
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

PLAIN_EVERY_S = 30.0
ARTIFACT_EVERY_S = 2.0


@dataclass
class Stage:
    """The counts of one stage of a run (a dataset of an ingest, the plan of an evaluate)."""

    label: str
    units: int
    work: int  # slices for evaluate, cases for ingest: what the bar and the rate measure
    units_done: int = 0
    work_done: int = 0
    rows: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def speed(self) -> float | None:
        """Work per second since the stage began (None before any work is done): the mean over the
        whole stage, since units finish in bursts and rich's windowed estimate is empty after one."""
        elapsed = time.monotonic() - self.started
        return self.work_done / elapsed if self.work_done and elapsed > 0 else None

    @property
    def remaining_s(self) -> float | None:
        """Seconds left at the mean speed (None while the speed is unknown)."""
        speed = self.speed
        return None if speed is None else max(self.work - self.work_done, 0) / speed

    @property
    def fraction(self) -> float:
        """How much of the stage is done, from 0 to 1 (an empty stage is done)."""
        if self.work:
            return min(1.0, self.work_done / self.work)
        return min(1.0, self.units_done / self.units) if self.units else 1.0


def _duration(seconds: float | None) -> str:
    return "?" if seconds is None else str(dt.timedelta(seconds=round(seconds)))


def counts(stage: Stage, unit_name: str, work_name: str, rows_name: str) -> str:
    """The stage's counts, e.g. ``3/5 units, 6/10 slices, 6 rows`` (work is left out when it counts the units)."""
    parts = [f"{stage.units_done}/{stage.units} {unit_name}"]
    if work_name != unit_name:
        parts.append(f"{stage.work_done}/{stage.work} {work_name}")
    return ", ".join([*parts, f"{stage.rows} {rows_name}"])


def plain_line(stage: Stage, unit_name: str, work_name: str, rows_name: str, speed: float | None,
               remaining: float | None) -> str:
    """The one-line progress of ``stage`` for a log, e.g. ``sample-radiomics: 3/5 units, 6/10 slices, ...``."""
    rate = "?" if speed is None else f"{speed:.2f}"
    return f"{stage.label}: {counts(stage, unit_name, work_name, rows_name)}; {rate} {work_name}/s, ETA {_duration(remaining)}"


def _log_console() -> Console:
    """The console Prefect's log handler prints to (a new stderr console where Prefect logs elsewhere)."""
    for logger in (logging.getLogger("prefect"), logging.getLogger()):
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler):
                return handler.console
    return Console(stderr=True)


class RunProgress:
    """Progress of one flow run over ``stages`` stages, shown on the terminal (or log) and as an artifact."""

    def __init__(self, key: str, description: str, stages: int = 1, unit_name: str = "units",
                 work_name: str = "slices", rows_name: str = "rows", console: Console | None = None) -> None:
        self.names = (unit_name, work_name, rows_name)
        self.stages, self.finished = max(stages, 1), 0
        self.stage: Stage | None = None
        self.artifact = create_progress_artifact(progress=0.0, key=key, description=description)
        self.percent, self.artifact_at, self.plain_at = 0.0, time.monotonic(), time.monotonic()
        self.console = console or _log_console()
        # Styles are named as colours: Prefect's console theme lacks rich's default progress styles.
        columns = [TextColumn("{task.description}"), BarColumn(style="grey23", complete_style="green",
                   finished_style="green", pulse_style="green"), TextColumn("{task.fields[counts]}"),
                   TextColumn("{task.fields[rate]}")]
        self.bar = Progress(*columns, console=self.console, disable=not self.console.is_terminal,
                            refresh_per_second=4)
        self.task: TaskID | None = None

    def __enter__(self) -> RunProgress:
        self.bar.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.bar.stop()
        if exc_type is None:
            self._set_percent(100.0, force=True)

    def begin(self, label: str, units: int, work: int) -> None:
        """Start the next stage: ``units`` to complete, carrying ``work`` (the bar's total)."""
        self.stage = Stage(label, units, work)
        self.task = self.bar.add_task(label, total=work or units or 1, counts="", rate="")
        self._show(plain=True)

    def advance(self, units: int = 1, work: int = 0, rows: int = 0) -> None:
        """Record ``units`` completed, with their ``work`` and ``rows``."""
        stage = self.stage
        stage.units_done, stage.work_done, stage.rows = stage.units_done + units, stage.work_done + work, stage.rows + rows
        self._show(plain=time.monotonic() - self.plain_at >= PLAIN_EVERY_S)
        self._set_percent(100.0 * (self.finished + stage.fraction) / self.stages,
                          force=time.monotonic() - self.artifact_at >= ARTIFACT_EVERY_S)

    def end(self) -> None:
        """End a stage (whatever it completed, or one that never began): a last plain line, the artifact moved on."""
        if self.stage is not None:
            self._show(plain=True)
            self.stage = None
        self.finished += 1
        self._set_percent(100.0 * self.finished / self.stages, force=True)

    def _show(self, plain: bool) -> None:
        stage = self.stage
        unit_name, work_name, rows_name = self.names
        completed = stage.work_done if stage.work else stage.units_done
        rate = "" if stage.speed is None else f"{stage.speed:.2f} {work_name}/s, ETA {_duration(stage.remaining_s)}"
        self.bar.update(self.task, completed=completed, counts=counts(stage, *self.names), rate=rate)
        if plain and self.bar.disable:
            self.console.print(plain_line(stage, unit_name, work_name, rows_name, stage.speed, stage.remaining_s),
                               markup=False, highlight=False, soft_wrap=True)
            self.plain_at = time.monotonic()

    def _set_percent(self, percent: float, force: bool) -> None:
        if force and percent != self.percent:
            update_progress_artifact(self.artifact, progress=percent)
            self.percent, self.artifact_at = percent, time.monotonic()
