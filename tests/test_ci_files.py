"""The CI files under ``ci/`` parse, and their commands pass on the bundled examples.

Each file is read as its CI system reads it (YAML), its commands are taken
out in order and run here, in a copy of ``examples/``, exactly as written
(the install step aside: this environment has the package already). Then
the outputs the files upload must exist, and a planted regression must
fail the gate step.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML, from the test extra, is not installed")

REPO = Path(__file__).resolve().parent.parent
OUTPUTS = ("results.json", "junit.xml", "dashboard.html", "gate.xml", "gate.md")


def _github_commands() -> list[str]:
    workflow = yaml.safe_load((REPO / "ci" / "github-actions.yml").read_text(encoding="utf-8"))
    steps: list[dict[str, Any]] = workflow["jobs"]["memory"]["steps"]
    uses = [step["uses"].split("@")[0] for step in steps if "uses" in step]
    assert uses == ["actions/checkout", "actions/setup-python", "actions/upload-artifact"]
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "automem-out/"
    return [step["run"] for step in steps if "run" in step]


def _gitlab_commands() -> list[str]:
    jobs = yaml.safe_load((REPO / "ci" / "gitlab-ci.yml").read_text(encoding="utf-8"))
    job = jobs["memory"]
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == ["automem-out/junit.xml", "automem-out/gate.xml"]
    commands: list[str] = job["script"]
    return commands


def _run(command: str, folder: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for name in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    return subprocess.run(
        command, shell=True, cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )


def _without_install(commands: list[str]) -> list[str]:
    (install, *rest) = commands
    assert install.startswith("python -m pip install")
    return rest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(
        REPO / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


@pytest.mark.parametrize("commands", [_github_commands, _gitlab_commands], ids=["github", "gitlab"])
def test_the_ci_commands_pass_on_the_examples_and_fail_on_a_regression(
    project: Path, commands: Any
) -> None:
    test_run, gate = _without_install(commands())
    ran = _run(test_run, project)
    assert ran.returncode == 0, ran.stdout[-2000:]
    assert "1 xfailed" in ran.stdout  # the planted leak, caught as expected
    gated = _run(gate, project)
    assert gated.returncode == 0, gated.stdout + gated.stderr
    for name in OUTPUTS:
        assert (project / "automem-out" / name).is_file(), name
    cases = ET.parse(project / "automem-out" / "gate.xml").getroot().iter("testcase")
    assert len(list(cases)) == 4

    # A regression: the baseline says one test used far less than it does.
    baseline_path = project / "examples" / "automem-baseline.json"
    baseline = json.loads(baseline_path.read_text(encoding="utf-8"))
    planted = "examples/test_report_builder.py::test_report_fits_its_budget"
    baseline["tests"][planted]["peak_bytes"] = 0
    baseline_path.write_text(json.dumps(baseline), encoding="utf-8")
    gated = _run(gate, project)
    assert gated.returncode == 1, gated.stdout + gated.stderr
    assert planted in gated.stdout
