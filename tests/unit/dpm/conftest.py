"""Fixtures: a configured DPM driver on the in-process HMC emulator (z13 or z15)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import pytest
from nova import context as nova_context
from nova import exception, objects
from nova.network import model as network_model
from nova.tests.unit import fake_instance
from nova.virt import virtapi
from oslo_config import fixture as config_fixture

from ibmvirt import contract
from ibmvirt.conf import CONF
from ibmvirt.dpm import driver as dpm_driver
from tests.unit.dpm import fakes

objects.register_all()

HOST = "subset1"
TARGETS = ["500507680b214ac1", "500507680b224ac1"]


class FakeVirtAPI(virtapi.VirtAPI):
    """Nova's side of vif-plugged events: records what the driver waits for."""

    def __init__(self) -> None:
        self.waited: list[list[tuple[str, str]]] = []
        self.time_out = False

    @contextlib.contextmanager
    def wait_for_instance_event(self, instance, event_names, timeout=300, error_callback=None):
        self.waited.append(list(event_names))
        yield
        if self.time_out and event_names:
            raise exception.InstanceEventTimeout()

    def exit_wait_early(self, events):
        raise NotImplementedError

    def update_compute_provider_status(self, context, rp_uuid, enabled):
        pass


@dataclass
class Env:
    gen: str
    session: object
    client: object
    ids: object
    virtapi: FakeVirtAPI
    driver: dpm_driver.DPMDriver
    log: fakes.RequestLog
    context: object = field(default_factory=nova_context.get_admin_context)

    @property
    def cpc(self):
        return self.session.hmc.cpcs.lookup_by_oid(self.ids.cpc)

    def set_status(self, instance, status: str) -> None:
        """The guest or firmware changes the partition's status (e.g. in-band shutdown)."""
        self.session.engine.simulate_partition_status(self.partition(instance).uri, status)

    def partitions(self):
        """Partitions on the emulated CPC (the HMC's truth)."""
        return list(self.cpc.partitions.list())

    def partition(self, instance):
        found = [p for p in self.partitions() if p.properties["name"].endswith(instance.uuid)]
        return found[0] if found else None

    def storage_groups(self):
        return list(self.session.hmc.consoles.console.storage_groups.list())

    def new_driver(self, host: str = HOST) -> dpm_driver.DPMDriver:
        """A second driver process (e.g. after a restart, or another host)."""
        CONF.set_override("host", host)
        drv = dpm_driver.DPMDriver(self.virtapi, client=self.client)
        drv.init_host(host)
        return drv

    def instance(self, image_ref: str = "", vcpus: int = 2, memory_mb: int = 2048, **kw):
        flavor = objects.Flavor(
            id=1, name="f", vcpus=vcpus, memory_mb=memory_mb, root_gb=0, extra_specs={}
        )
        inst = fake_instance.fake_instance_obj(
            self.context,
            image_ref=image_ref,
            expected_attrs=["system_metadata"],
            flavor=flavor,
            display_name="vm1",
            **kw,
        )
        inst.system_metadata = {}
        inst.save = lambda *a, **k: None
        return inst

    def block_device_info(self, instance, lun: int = 1, volume_type: str = "fibre_channel"):
        wwpns = self.driver.get_volume_connector(instance)["wwpns"]
        return {
            "block_device_mapping": [
                {
                    "boot_index": 0,
                    "mount_device": "/dev/sda",
                    "volume_size": 10,
                    "connection_info": connection_info(wwpns, lun, volume_type),
                }
            ]
        }

    def spawn(self, instance, vifs=(), lun: int = 1, power_on: bool = True):
        self.driver.prepare_for_spawn(instance)
        bdi = self.block_device_info(instance, lun)
        self.driver.spawn(
            self.context,
            instance,
            objects.ImageMeta.from_dict({}),
            [],
            None,
            {},
            network_model.NetworkInfo(list(vifs)),
            bdi,
            power_on=power_on,
        )
        return bdi


def connection_info(wwpns, lun=1, volume_type="fibre_channel", volume_id="vol-boot"):
    return {
        "driver_volume_type": volume_type,
        "serial": volume_id,
        "data": {
            "volume_id": volume_id,
            "target_lun": lun,
            "target_wwn": list(TARGETS),
            "initiator_target_map": {w: list(TARGETS) for w in wwpns},
        },
    }


def vif(
    port_id: str, mac: str, vswitch: str, vif_type: str = contract.VIF_TYPE_DPM_VSWITCH, **details
):
    return network_model.VIF(
        id=port_id,
        address=mac,
        type=vif_type,
        details={contract.VIF_DETAILS_DPM_VSWITCH_ID: vswitch, **details},
        active=False,
    )


@pytest.fixture
def conf():
    fix = config_fixture.Config(CONF)
    fix.setUp()
    yield fix
    fix.cleanUp()


def configure(fix, ids, host: str = HOST, **dpm) -> None:
    fix.config(host=host, vif_plugging_timeout=300, vif_plugging_is_fatal=True)
    options = {
        "hmc": ["hmc.example.com"],
        "hmc_username": "ibmvirt",
        "hmc_password": "secret",
        "cpc_object_id": ids.cpc,
        "max_processors": 8,
        "max_memory": 65536,
        "physical_storage_adapter_mappings": [f"{a}:0" for a in ids.fcp_adapters],
    }
    options.update(dpm)
    fix.config(group="dpm", **options)


def make_env(conf, gen: str, init: bool = True, op_delay: float = 0.0, **dpm) -> Env:
    inventory, ids = fakes.INVENTORIES[gen]
    session, client = fakes.emulated_hmc(inventory, op_delay)
    configure(conf, ids, **dpm)
    api = FakeVirtAPI()
    drv = dpm_driver.DPMDriver(api, client=client)
    log = fakes.RequestLog(session)
    if init:
        drv.init_host(HOST)
    log.clear()
    return Env(gen, session, client, ids, api, drv, log)


@pytest.fixture(autouse=True)
def saved_sysmeta(monkeypatch):
    """Instance.save without a database: the system metadata each save wrote, by UUID."""
    saved: dict[str, list[dict[str, str]]] = {}

    def save(self, *args, **kwargs):
        saved.setdefault(self.uuid, []).append(dict(self.system_metadata))

    monkeypatch.setattr(objects.Instance, "save", save)
    return saved


@pytest.fixture(params=["z13", "z15"])
def env(request, conf) -> Env:
    """A driver after init_host, on each CPC generation."""
    return make_env(conf, request.param)


@pytest.fixture
def z13(conf) -> Env:
    return make_env(conf, "z13")


@pytest.fixture
def z15(conf) -> Env:
    return make_env(conf, "z15")
