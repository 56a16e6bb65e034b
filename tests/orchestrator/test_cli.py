"""Every `vigil` command answers --help, and `run` never imports torch."""

import subprocess
import sys

import pytest

from orchestrator.cli import make_parser

COMMANDS = [[], ["build"], ["run", "audio"], ["run", "vrt"], ["run", "minview"],
            ["minview", "generate"], ["minview", "calibrate"], ["train", "vrt"], ["embed"],
            ["health"], ["run", "quality"], ["train", "audio"], ["audio", "generate"],
            ["rollout"], ["rollout", "status"], ["rollout", "start"], ["rollout", "promote"],
            ["rollout", "rollback"], ["review"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "vigil")
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        make_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: vigil" in capsys.readouterr().out


def test_the_daemon_side_loads_no_model_code():
    code = ("import sys, orchestrator.cli, orchestrator.app, orchestrator.pipelines.audio, "
            "orchestrator.pipelines.vrt, orchestrator.pipelines.minview, "
            "orchestrator.pipelines.quality, orchestrator.commands.embed, "
            "orchestrator.commands.rollout; "
            "print(sorted(m for m in ('torch', 'modelzoo', 'handlers', 'sklearn', 'pandas') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_the_model_commands_are_declared_by_the_models_package_without_torch():
    code = ("import sys; from orchestrator.cli import make_parser; "
            "commands = make_parser()._subparsers._group_actions[0].choices; "
            "print(commands['build'].get_default('entry'), "
            "'modelzoo.commands' in sys.modules, "
            "sorted(m for m in ('torch', 'numpy', 'handlers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["modelzoo.cli:build", "True", "[]"]


def test_rollout_commands_print_a_table_and_refuse_what_cannot_be_done(tmp_path, capsys):
    from orchestrator.cli import main
    from tests.orchestrator.fakes import AUDIO

    store = tmp_path / "store"
    store.mkdir()
    catalogue = {"format": 1, "live": {"audio_nsfw_hi": "1.0"}, "models": [
        {"name": "audio_nsfw_hi", "version": version, "family": "audio_nsfw",
         "file": f"audio_nsfw_hi-{version}.mar", "languages": list(AUDIO[0].languages)}
        for version in ("1.0", "1.1")]}
    (store / "catalogue.json").write_text(__import__("json").dumps(catalogue))
    config = tmp_path / "vigil.yaml"
    config.write_text(f"database_url: sqlite:///{tmp_path / 'v.db'}\n"
                      f"torchserve: {{catalogue: {store / 'catalogue.json'}}}\n")
    for action in (["start", "--candidate", "1.1"], ["promote"], ["rollback", "--reason",
                                                                  "looks off"]):
        assert main(["rollout", action[0], "--model", "audio_nsfw_hi", *action[1:],
                     "--config", str(config)]) == 0
    assert main(["rollout", "status", "--history", "5", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-4].split()[:5] == ["MODEL", "LANGUAGE", "LIVE", "CANDIDATE", "STEP"]
    newest, middle, oldest = lines[-3:]
    assert " rolled_back " in newest and newest.endswith("looks off")
    assert " canary 5% " in middle and " running " in middle
    assert " shadow " in oldest and oldest.endswith("started by hand")
    with pytest.raises(SystemExit, match="not running"):
        main(["rollout", "promote", "--model", "audio_nsfw_hi", "--config", str(config)])
    with pytest.raises(SystemExit, match="2.0 is not in the catalogue"):
        main(["rollout", "start", "--model", "audio_nsfw_hi", "--candidate", "2.0",
              "--config", str(config)])
