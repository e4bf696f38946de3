"""The power-state sync's NovaLink request budget, on the emulator over HTTP.

Nova's ``_sync_power_states`` asks ``get_num_instances`` and then
``get_info`` for every instance of the host. Whatever the number of LPARs,
that costs one ``quick/All`` read when the event feed may have lost events
(start-up, MISSING_EVENTS, a burst of changes) and nothing while the cache is
valid. The listener thread is stopped after init_host and its events handed
to the driver's handler directly, so every request counted is the sync's.
"""

from __future__ import annotations

import collections
import copy
import gc
import time
import uuid

import pytest
import yaml
from nova import objects
from nova.virt import virtapi
from oslo_config import fixture as config_fixture
from pypowervm.utils import uuid as pvm_uuid
from pypowervm.wrappers import event as pvm_evt

from ibmvirt.conf import CONF
from ibmvirt.emulators.novalink import app, inventory
from ibmvirt.powervm import driver as pvm_driver
from ibmvirt.powervm import event, vm

objects.register_all()

QUICK_ALL = "/LogicalPartition/quick/All"


def _inventory(lpars: int) -> dict:
    with open(inventory.builtin_path("small"), encoding="utf-8") as f:
        inv = copy.deepcopy(yaml.safe_load(f))
    # PowerVM UUIDs have the top bit clear, like the LPARs of Nova instances.
    inv["lpars"] = [
        {
            "name": f"budget-{i:03d}",
            "uuid": pvm_uuid.convert_uuid_to_pvm(str(uuid.uuid5(uuid.NAMESPACE_DNS, str(i)))),
            "memory_mb": 512,
            "proc_units": 0.05,
            "state": "running" if i % 2 else "not activated",
        }
        for i in range(lpars)
    ]
    return inv


class _Event:
    """What pypowervm's poll thread hands the handler for one event."""

    def __init__(self, etype: str, data: str = "", detail: str = "") -> None:
        self.etype, self.data, self.detail = etype, data, detail


class Host:
    """A driver after init_host on an emulated host with ``lpars`` client LPARs."""

    def __init__(self, srv, drv, lpars: int) -> None:
        self.srv, self.drv = srv, drv
        self.log = srv.httpd.RequestHandlerClass.control.log
        self.instances = [
            objects.Instance(uuid=vm.nova_uuid_candidates(u)[0], id=i + 1)
            for i, u in enumerate(sorted(self._lpar_uuids()))
        ]
        assert len(self.instances) == lpars
        self.handler = event.EventHandler(drv.host.states, drv.host.lifecycle)

    def _lpar_uuids(self) -> list[str]:
        with self.srv.emu.lock:
            return [
                lp.uuid
                for lp in self.srv.emu.store.list("LogicalPartition")
                if lp.field("IsManagementPartition") != "true"
            ]

    def settled(self) -> int:
        """The log's length once every request answered so far is in it (the
        emulator logs a request just after answering it)."""
        deadline = time.monotonic() + 5
        while True:
            before = len(self.log.records())
            time.sleep(0.1)
            now = len(self.log.records())
            if now == before and now >= self.srv.emu.request_count:
                return now
            assert time.monotonic() < deadline, "the request log does not settle"

    def requests(self, action) -> list:
        """The requests ``action`` made, from the emulator's request log."""
        self.settled()
        before = collections.Counter(self.log.records())
        action()
        self.settled()
        return list((collections.Counter(self.log.records()) - before).elements())

    def sync(self) -> None:
        """What Nova's _sync_power_states asks the driver."""
        assert self.drv.get_num_instances() == len(self.instances)
        for inst in self.instances:
            self.drv.get_info(inst)

    def changed(self, instances) -> None:
        """PartitionState events for these instances' LPARs."""
        self.handler.process(
            [
                _Event(
                    pvm_evt.EventType.MODIFY_URI,
                    f"https://nl:12443/rest/api/uom/ManagedSystem/x/LogicalPartition/"
                    f"{vm.pvm_uuid_of(inst)}",
                    "Other,PartitionState",
                )
                for inst in instances
            ]
        )


@pytest.fixture
def host_with(tmp_path):
    """host_with(n) -> Host; emulators and drivers cleaned up at the end."""
    fix = config_fixture.Config(CONF)
    fix.setUp()
    made = []

    def build(lpars: int) -> Host:
        tokens = tmp_path / f"tokens{len(made)}"
        tokens.mkdir(mode=0o700)
        srv = app.start(_inventory(lpars), token_dir=str(tokens), event_wait=0.3)
        fix.config(
            group="powervm",
            novalink_port=srv.port,
            vios_ready_timeout=0,
            volume_group_name="datavg",
            lifecycle_event_delay=3600,  # no lifecycle reports during the test
        )
        drv = pvm_driver.PowerVMDriver(virtapi.VirtAPI())
        made.append((srv, drv))
        drv.init_host("compute")
        listener = drv.host.adapter.session.get_event_listener()
        poller = listener._pthread  # pypowervm's poll thread ends after its current poll
        listener.shutdown()
        poller.join(5)
        return Host(srv, drv, lpars)

    yield build
    for srv, drv in made:
        drv.cleanup_host("compute")
    gc.collect()  # pypowervm Sessions log off when collected
    for srv, _ in made:
        srv.stop()
    fix.cleanUp()


def assert_sync_budget(host: Host, budget: int) -> list:
    """Run one sync; fail if it made more than ``budget`` requests."""
    made = host.requests(host.sync)
    assert len(made) <= budget, (
        f"sync of {len(host.instances)} instances made {len(made)} NovaLink requests "
        f"(budget {budget}): {[f'{r.method} {r.path}' for r in made[:5]]}..."
    )
    return made


@pytest.mark.parametrize("lpars", [3, 60])
def test_sync_costs_one_read_after_start_and_none_while_valid(host_with, lpars):
    host = host_with(lpars)
    (first,) = assert_sync_budget(host, 1)
    assert first.method == "GET" and first.path.endswith(QUICK_ALL), first
    assert assert_sync_budget(host, 0) == []
    # The answers are the LPARs' states, not guesses.
    running = [i for i in host.instances if host.drv.get_info(i).state == 1]
    assert len(running) == lpars // 2


@pytest.mark.parametrize("lpars", [3, 60])
@pytest.mark.parametrize(
    "etype",
    [
        pvm_evt.EventType.MISSING_EVENTS,
        pvm_evt.EventType.NEW_CLIENT,
        pvm_evt.EventType.CACHE_CLEARED,
    ],
)
def test_sync_after_lost_events_costs_one_read(host_with, lpars, etype):
    host = host_with(lpars)
    host.sync()
    host.handler.process([_Event(etype)])
    (read,) = assert_sync_budget(host, 1)
    assert read.path.endswith(QUICK_ALL)
    assert assert_sync_budget(host, 0) == []


def test_one_changed_lpar_is_one_small_read(host_with):
    host = host_with(20)
    host.sync()
    host.changed(host.instances[:1])
    (read,) = assert_sync_budget(host, 1)
    assert read.path.endswith("/quick/PartitionState"), read


@pytest.mark.parametrize("lpars", [3, 60])
def test_a_burst_of_changes_is_one_read_whatever_its_size(host_with, lpars):
    host = host_with(lpars)
    host.sync()
    host.changed(host.instances)
    (read,) = assert_sync_budget(host, 1)
    assert read.path.endswith(QUICK_ALL)


def test_the_budget_check_fails_for_a_read_per_instance(host_with, monkeypatch):
    """nova-powervm read each LPAR's state for get_info: the check catches that."""
    host = host_with(10)
    host.sync()

    def get_info_one_read_each(instance, use_cache=True):
        return vm.instance_info(vm.read_state(host.drv.host.adapter, vm.pvm_uuid_of(instance)))

    monkeypatch.setattr(host.drv, "get_info", get_info_one_read_each)
    with pytest.raises(AssertionError, match="made 10 NovaLink requests"):
        assert_sync_budget(host, 1)


@pytest.mark.parametrize("lpars", [3, 60])
def test_the_resource_update_reads_no_lpar_feed(host_with, lpars):
    """Nova's periodic resource update: a constant number of small reads, none
    of them a feed whose size grows with the LPARs."""
    host = host_with(lpars)
    made = host.requests(lambda: host.drv.get_available_resource("compute"))
    paths = [r.path.split("?")[0] for r in made]
    assert len(made) <= 4, paths
    assert not [p for p in paths if p.rstrip("/").endswith("LogicalPartition") or "search" in p]
