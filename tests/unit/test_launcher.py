"""The launcher under Debian's /usr/bin/python3 (Orthanc's embedded Python),
which knows neither the package nor its dependencies."""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "orthanc_gnuhealth_plugin" / "launcher" / "orthanc_gnuhealth.py"
SYSTEM_PYTHON = "/usr/bin/python3"

# Orthanc runs the script with `__file__` set and a stub `orthanc` module.
SCRIPT = f"""
import json, runpy, sys, types
orthanc = types.ModuleType("orthanc")
orthanc.GetConfiguration = lambda: json.dumps({{"GnuHealth": {{}}}})
for name in ("LogError", "LogWarning", "LogInfo"):
    setattr(orthanc, name, lambda line, name=name: print(name, line))
orthanc.ChangeType = types.SimpleNamespace(ORTHANC_STARTED=10, ORTHANC_STOPPED=11, DELETED=1,
                                          NEW_SERIES=5, NEW_STUDY=6, STABLE_SERIES=8,
                                          STABLE_STUDY=9)
orthanc.ResourceType = types.SimpleNamespace(STUDY=1, SERIES=2, INSTANCE=3)
sys.modules["orthanc"] = orthanc
runpy.run_path({str(LAUNCHER)!r}, run_name="__main__")
import proteus
print("proteus from", proteus.__file__)
"""

pytestmark = pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="needs Debian's python3")


def run(env):
    return subprocess.run([SYSTEM_PYTHON, "-c", SCRIPT], capture_output=True, text=True,
                          cwd="/", env={"PATH": os.environ["PATH"], **env}, timeout=60)


def test_launcher_finds_the_package_and_the_venv_from_the_environment():
    venv = pathlib.Path(sys.prefix)
    result = run({"ORTHANC_GNUHEALTH_VENV": str(venv)})
    assert "LogError GNU Health plugin disabled: GnuHealth.TrytonPassword is missing" in \
        result.stdout, result.stderr
    assert f"proteus from {venv}" in result.stdout


def test_launcher_reports_a_wrong_venv_without_raising():
    result = run({"ORTHANC_GNUHEALTH_VENV": "/nonexistent"})
    assert "ORTHANC_GNUHEALTH_VENV=/nonexistent has no" in result.stderr
    assert "GNU Health plugin disabled, cannot import it (No module named " in \
        result.stderr


@pytest.mark.skipif(not (ROOT / ".venv").is_dir(), reason="no .venv beside the package")
def test_launcher_uses_the_venv_beside_an_editable_checkout():
    result = run({})
    assert f"proteus from {ROOT / '.venv'}" in result.stdout, result.stderr
