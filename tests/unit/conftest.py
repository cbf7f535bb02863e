"""Fixtures shared by the unit tests: the fakes of Orthanc, GNU Health,
the clock and the log that the worker is handed (fakes.py)."""
import sys
from pathlib import Path

import pytest

# scripts/stack.py: the stand-ins for servers the unit tests share with
# the integration tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from fakes import FakeClock, FakeGnuHealth, FakeOrthanc, Log


@pytest.fixture
def orthanc():
    return FakeOrthanc()


@pytest.fixture
def gnuhealth():
    return FakeGnuHealth()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def log():
    return Log()
