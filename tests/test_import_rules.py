"""The import rules of the layout (setup.cfg, [importlinter]): the orchestrator loads no
model code, modelzoo no asyncio, handlers no other Vigil package, and the orchestrator's
modules import only downward."""

import configparser
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_keeps_every_contract():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(REPO_ROOT / "setup.cfg")],
                            cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _contract_layers() -> list[str]:
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    layers = config["importlinter:contract:orchestrator-layers"]["layers"]
    return [line.strip() for line in layers.strip().splitlines()]


def test_every_orchestrator_module_and_package_sits_in_a_layer():
    named = {name.strip() for line in _contract_layers() for name in line.split("|")}
    package = REPO_ROOT / "orchestrator"
    present = {f"orchestrator.{path.stem}" for path in package.glob("*.py")
               if path.name != "__init__.py"}
    present |= {f"orchestrator.{path.parent.name}" for path in package.glob("*/__init__.py")}
    assert present - named == set(), "add them to setup.cfg's orchestrator-layers"
    assert named - present == set(), "the contract names modules that do not exist"


def test_the_architecture_doc_shows_the_contracts_layers():
    doc = (REPO_ROOT / "docs" / "ARCHITECTURE.md").read_text()
    block = re.search(r"```layers\n(.*?)```", doc, re.S)
    assert block, "docs/ARCHITECTURE.md has no ```layers block"
    assert block.group(1).strip().splitlines() == _contract_layers()
