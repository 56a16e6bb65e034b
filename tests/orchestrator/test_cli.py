"""Every `vigil` command answers --help, and `run` never imports torch."""

import subprocess
import sys

import pytest

from orchestrator.cli import make_parser

COMMANDS = [[], ["build"], ["run", "audio"], ["run", "vrt"], ["run", "minview"],
            ["minview", "generate"], ["minview", "calibrate"], ["train", "vrt"], ["embed"],
            ["health"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "vigil")
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        make_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: vigil" in capsys.readouterr().out


def test_the_daemon_side_loads_no_model_code():
    code = ("import sys, orchestrator.cli, orchestrator.app, orchestrator.pipelines.audio, "
            "orchestrator.pipelines.vrt, orchestrator.pipelines.minview, orchestrator.embed; "
            "print(sorted(m for m in ('torch', 'modelzoo', 'handlers', 'sklearn', 'pandas') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
