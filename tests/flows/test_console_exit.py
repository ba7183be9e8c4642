"""The console script's exit (flows.cli.main): click's status kept, output flushed, atexit run, no teardown."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flows import cli
from tests.conftest import run_samatlas


@pytest.mark.parametrize(("raised", "status"), [(None, 0), (0, 0), (2, 2), ("a message", 1)])
def test_main_exits_with_clicks_status_after_atexit(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                                   raised: object, status: int):
    calls: list[object] = []

    def command() -> None:
        print("the command's output", end="")  # unflushed: main flushes before it ends the process
        sys.exit(raised)

    monkeypatch.setattr(cli, "app", command)
    monkeypatch.setattr(cli.atexit, "_run_exitfuncs", lambda: calls.append("atexit"))
    monkeypatch.setattr(cli.os, "_exit", lambda code: calls.append(code))
    cli.main()
    assert calls == ["atexit", status]
    out, err = capsys.readouterr()
    assert out == "the command's output"
    assert ("a message" in err) == (raised == "a message")


def test_main_lets_an_unexpected_exception_through(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cli, "app", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    monkeypatch.setattr(cli.os, "_exit", lambda code: pytest.fail("os._exit after an unhandled exception"))
    with pytest.raises(RuntimeError, match="boom"):
        cli.main()


def test_the_console_script_keeps_statuses_and_output(tmp_path: Path):
    assert run_samatlas(tmp_path, "--help").exit_code == 0
    bad = run_samatlas(tmp_path, "evaluate", "--model", "nope", "--dry-run")
    assert bad.exit_code == 2 and "unknown model 'nope'" in bad.output
    listed = run_samatlas(tmp_path, "datasets", "--format", "csv")
    assert listed.exit_code == 0 and listed.stdout.count("\n") > 33  # the header and the 33 survey datasets, all flushed
