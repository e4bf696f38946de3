"""Fixtures: the NovaLink and HMC emulators, instances on them, Ceilometer's conf."""

from __future__ import annotations

import gc
import logging
import os
import uuid as uuidlib

import pytest

os.environ.setdefault("OS_NOVA_DISABLE_EVENTLET_PATCHING", "1")

import zhmcclient  # noqa: E402
from ceilometer import service  # noqa: E402
from ceilometer.compute import (
    discovery,  # noqa: E402
    pollsters,  # noqa: E402
)

from ibmvirt.dpm import naming  # noqa: E402
from ibmvirt.emulators.hmc import HMCEmulatorFixture, inventories  # noqa: E402
from ibmvirt.emulators.novalink import app  # noqa: E402
from ibmvirt.telemetry import registration  # noqa: E402

HOST = "cmp1"
NOVALINK_PASSWORD = "passw0rd"  # noqa: S105 - the small inventory's emulated user


def nova_instance(instance_id: str | None = None, name: str = "") -> discovery.NovaLikeServer:
    """What Ceilometer's instance discovery hands the pollsters (a Nova server)."""
    iid = instance_id or str(uuidlib.uuid4())
    name = name or f"vm-{iid[:8]}"
    return discovery.NovaLikeServer(
        id=iid,
        name=name,
        **{"OS-EXT-SRV-ATTR:instance_name": f"instance-{iid[:8]}"},
        flavor={"name": "m1", "vcpus": 2, "ram": 4096, "disk": 0, "ephemeral": 0},
        status="ACTIVE",
        user_id="u1",
        tenant_id="p1",
        hostId="h1",
        image=None,
        metadata={},
    )


@pytest.fixture
def ceilo_conf(tmp_path):
    """Ceilometer's own configuration, as ceilometer-polling prepares it."""
    registration.allow_inspectors()
    conf = service.prepare_service(argv=["ceilometer-polling"], config_files=[])
    conf.set_override("host", HOST)
    yield conf
    conf.reset()
    # Ceilometer keeps the first inspector for every later pollster (class attribute).
    if hasattr(pollsters.GenericComputePollster, "_inspector"):
        del pollsters.GenericComputePollster._inspector


@pytest.fixture
def novalink(tmp_path):
    srv = app.start("small", token_dir=str(tmp_path))
    logging.getLogger("pypowervm.adapter").setLevel(logging.ERROR)
    yield srv
    gc.collect()
    srv.stop()


@pytest.fixture
def pvm_conf(ceilo_conf, novalink):
    from ibmvirt.conf import telemetry as telemetry_conf

    telemetry_conf.register_opts(ceilo_conf)
    ceilo_conf.set_override("hypervisor_inspector", "powervm")
    for k, v in {
        "novalink_host": "127.0.0.1",
        "novalink_protocol": "http",
        "novalink_port": novalink.port,
        "novalink_username": "neo",
        "novalink_password": NOVALINK_PASSWORD,
    }.items():
        ceilo_conf.set_override(k, v, group="powervm")
    return ceilo_conf


@pytest.fixture
def pvm(novalink):
    """A pypowervm adapter of the test itself (to build LPARs) and the host."""
    import pypowervm.adapter as pvm_adpt
    from pypowervm.wrappers import managed_system as pvm_ms

    sess = pvm_adpt.Session(
        "127.0.0.1", "neo", NOVALINK_PASSWORD, protocol="http", port=novalink.port, conn_tries=1
    )
    adapter = pvm_adpt.Adapter(sess)
    yield adapter, pvm_ms.System.get(adapter)[0]
    sess._logoff()


@pytest.fixture
def hmc():
    fx = HMCEmulatorFixture(inventories.Z15)
    fx.setUp()
    yield fx
    fx.cleanUp()


@pytest.fixture
def cpc(hmc):
    client = zhmcclient.Client(hmc.session())
    return client.cpcs.find(**{"object-id": inventories.Z15_IDS.cpc})


@pytest.fixture
def dpm_conf(ceilo_conf, hmc):
    from ibmvirt.conf import telemetry as telemetry_conf

    telemetry_conf.register_opts(ceilo_conf)
    ceilo_conf.set_override("hypervisor_inspector", "dpm")
    for k, v in {
        "hmc": ["127.0.0.1"],
        "hmc_port": hmc.emulator.port,
        "hmc_username": hmc.userid,
        "hmc_password": hmc.password,
        "hmc_ca_file": hmc.emulator.ca_file,
        "cpc_object_id": inventories.Z15_IDS.cpc,
    }.items():
        ceilo_conf.set_override(k, v, group="dpm")
    return ceilo_conf


def dpm_partition(hmc, cpc, instance, nics=1, ifls=2, mem=4096, start=True):
    """A partition as the DPM driver makes it for ``instance``, with NICs, started."""
    part = cpc.partitions.create(
        {
            "name": naming.partition_name(HOST, instance.id),
            "description": naming.partition_description(HOST),
            "ifl-processors": ifls,
            "initial-memory": mem,
            "maximum-memory": mem,
        }
    )
    vswitch = cpc.virtual_switches.list()[0]
    for i in range(nics):
        part.nics.create(
            {"name": f"OpenStack_Port_{i}-{instance.id[:8]}", "virtual-switch-uri": vswitch.uri}
        )
    if start:  # as the guest would be after Start Partition (boot needs storage)
        hmc.emulator.set_partition_status(part.uri, "active")
    return part


def pvm_lpar(pvm, instance, units=0.5, vcpu=2, mem=4096, cna=True, vdisk=True, sriov=False):
    """An LPAR as the PowerVM driver makes it for ``instance``: CNA, vSCSI disk, running."""
    from pypowervm.tasks import cna as tsk_cna
    from pypowervm.tasks import power as pvm_power
    from pypowervm.tasks import scsi_mapper as tsk_map
    from pypowervm.tasks import storage as tsk_stg
    from pypowervm.utils import lpar_builder as lb
    from pypowervm.utils import uuid as pvm_uuid
    from pypowervm.wrappers import base_partition as pvm_bp
    from pypowervm.wrappers import iocard as pvm_card
    from pypowervm.wrappers import storage as pvm_stg
    from pypowervm.wrappers import virtual_io_server as pvm_vios

    adapter, host = pvm
    attrs = {
        lb.NAME: instance.name,
        lb.MEM: mem,
        lb.VCPU: vcpu,
        lb.PROC_UNITS: units,
        lb.ENV: pvm_bp.LPARType.AIXLINUX,
        lb.UUID: pvm_uuid.convert_uuid_to_pvm(instance.id).upper(),
    }
    lpar = lb.LPARBuilder(adapter, attrs, lb.DefaultStandardize(host)).build().create(parent=host)
    if cna:
        tsk_cna.crt_cna(adapter, host.uuid, lpar.uuid, 100, vswitch="ETHERNET0")
    if vdisk:
        vios1 = next(v for v in pvm_vios.VIOS.get(adapter, xag=[]) if v.name == "vios1")
        vg = next(v for v in pvm_stg.VG.get(adapter, parent=vios1) if v.name == "rootvg")
        disk = tsk_stg.crt_vdisk(adapter, vios1.uuid, vg.uuid, "b_" + instance.id[:13], 1)
        tsk_map.add_vscsi_mapping(host.uuid, vios1.uuid, lpar.uuid, disk)
    if sriov:
        pvm_card.SRIOVEthLPort.bld(adapter, 1, 0, pvid=100, cfg_capacity=0.1).create(parent=lpar)
    pvm_power.power_on(lpar, host.uuid)
    return lpar


def novalink_log(srv):
    """The NovaLink emulator's request log (its control endpoint keeps it)."""
    return srv.httpd.RequestHandlerClass.control.log
