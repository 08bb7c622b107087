"""Fixtures shared by the experiments' tests."""
import pytest


@pytest.fixture
def no_health_check(monkeypatch):
    """Switch off the health check's verdicts, for tests about files, flags and folders
    rather than learning: their one-epoch runs of tiny networks may rightly be stopped
    as not learned, which is not what they test."""
    from minikd import train
    monkeypatch.setattr(train.HealthCheck, "check", lambda self, *args, **kwargs: None)
