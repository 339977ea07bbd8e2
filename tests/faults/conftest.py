import pytest


@pytest.fixture
def marker(tmp_path):
    """A path that a crafted file's payload would create: it must not exist after the test."""
    m = tmp_path / "PAYLOAD_RAN"
    yield m
    assert not m.exists(), "code from the file ran"
