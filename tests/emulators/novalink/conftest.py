"""Fixtures: an in-process NovaLink emulator on an ephemeral loopback port,
driven by the real pypowervm Session/Adapter over real HTTP."""

from __future__ import annotations

import gc
import logging
import os

import pytest

os.environ.setdefault("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1")

from ibmvirt.emulators.novalink import app  # noqa: E402


@pytest.fixture
def emulator(tmp_path):
    """A fresh emulator (small inventory, jobs complete synchronously)."""
    srv = app.start("small", token_dir=str(tmp_path))
    yield srv
    gc.collect()  # let pypowervm Session.__del__ log off while the server is up
    srv.stop()


@pytest.fixture
def session(emulator):
    import pypowervm.adapter as pvm_adpt

    # pypowervm warns about plain http to a non-localhost name; that's expected here.
    logging.getLogger("pypowervm.adapter").setLevel(logging.ERROR)
    sess = pvm_adpt.Session(
        "127.0.0.1", "neo", "passw0rd", protocol="http", port=emulator.port, conn_tries=1
    )
    yield sess
    sess._logoff()


@pytest.fixture
def adapter(session):
    import pypowervm.adapter as pvm_adpt

    return pvm_adpt.Adapter(session)


@pytest.fixture
def host(adapter):
    from pypowervm.wrappers import managed_system as pvm_ms

    return pvm_ms.System.get(adapter)[0]
