"""Fixtures shared by the unit tests: the fakes of Orthanc, GNU Health,
the clock and the log that the worker is handed (fakes.py)."""
import pytest

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
