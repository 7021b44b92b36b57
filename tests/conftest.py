"""Test-wide settings: no Hypothesis deadlines (CI machines are shared and timing is noisy), and
a fixture that runs a test on one torch thread."""

from collections.abc import Iterator

import pytest
from hypothesis import settings

from lrkit._threads import torch_threads

settings.register_profile("lrkit", deadline=None, print_blob=True)
settings.load_profile("lrkit")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (many times slower on a busy machine), and
    pytest-xdist workers then do not contend. Modules use it with ``usefixtures``."""
    with torch_threads(1):
        yield
