"""The guest-operations world of tests/support/guest_world.py."""
from tests.support.guest_world import _debug_logs, world  # noqa: F401
