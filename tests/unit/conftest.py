# Nova's unit-test package selects the concurrency backend (threading, as
# OS_NOVA_DISABLE_EVENTLET_PATCHING=1 asks) and poisons eventlet; it must be
# imported before anything (oslo, futurist) can import eventlet.
import nova.tests.unit  # noqa: F401
