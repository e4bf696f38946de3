# Nova's unit-test package selects the concurrency backend (threading, as
# OS_NOVA_DISABLE_EVENTLET_PATCHING=1 asks) and poisons eventlet; it must be
# imported before anything (oslo, futurist) can import eventlet.
import nova.tests.unit  # noqa: F401
import pytest
from nova.tests import fixtures as nova_fixtures


@pytest.fixture(autouse=True)
def _no_node_identity_file():
    """As in Nova's own tests: drivers started here do not read or write Nova's
    node identity file (``state_path/compute_id``), and need no parsed config."""
    with nova_fixtures.ComputeNodeIdFixture():
        yield
