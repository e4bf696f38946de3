# Nova's functional package selects the concurrency backend (threading, as
# OS_NOVA_DISABLE_EVENTLET_PATCHING=1 asks) before anything else imports nova,
# oslo or urllib3; it must be the first import of this pytest process.
import nova.tests.functional  # noqa: F401
