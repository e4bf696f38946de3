"""Fixtures: HMC emulators over real HTTPS, and real zhmcclient clients for them."""

from __future__ import annotations

import pytest
import zhmcclient

from ibmvirt.emulators.hmc import HMCEmulatorFixture, inventories


def _fixture(inventory: str, **kwargs):
    fx = HMCEmulatorFixture(inventory, **kwargs)
    fx.setUp()
    return fx


@pytest.fixture
def z13():
    fx = _fixture(inventories.Z13)
    yield fx
    fx.cleanUp()


@pytest.fixture
def z15():
    fx = _fixture(inventories.Z15)
    yield fx
    fx.cleanUp()


@pytest.fixture
def z13_client(z13):
    return zhmcclient.Client(z13.session())


@pytest.fixture
def z15_client(z15):
    return zhmcclient.Client(z15.session())


@pytest.fixture
def z13_cpc(z13_client):
    return z13_client.cpcs.find(**{"object-id": inventories.Z13_IDS.cpc})


@pytest.fixture
def z15_cpc(z15_client):
    return z15_client.cpcs.find(**{"object-id": inventories.Z15_IDS.cpc})


def new_partition(cpc, name="inst-1", ifls=2, mem=4096, **extra):
    """Create a partition the way a DPM driver does."""
    props = {
        "name": name,
        "description": "OpenStack CPCSubset=host1",
        "ifl-processors": ifls,
        "initial-memory": mem,
        "maximum-memory": mem,
    }
    props.update(extra)
    return cpc.partitions.create(props)


def http_error(excinfo):
    """(status, reason) of a zhmcclient.HTTPError."""
    return excinfo.value.http_status, excinfo.value.reason
