"""Test-wide settings: no Hypothesis deadlines (CI machines are shared and timing is noisy)."""

from hypothesis import settings

settings.register_profile("lrkit", deadline=None, print_blob=True)
settings.load_profile("lrkit")
