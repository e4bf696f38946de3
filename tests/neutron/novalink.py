"""A NovaLink emulator next to real ML2, for the PowerVM agents' tests.

``NovaLinkAgentTestCase`` starts an emulated host, points the agents'
``[powervm]`` options at it and gives the test a separate pypowervm adapter
playing Nova's PowerVM driver: it creates LPARs and plugs ports with
``ibmvirt.powervm.vif`` (which imports cleanly here), so the agent sees the
same adapters and NOVA_PVM_VIF events it sees from nova-compute.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
import time
import uuid as uuidlib

import pypowervm.adapter as pvm_adpt
from oslo_config import cfg
from pypowervm.tasks import partition as pvm_par
from pypowervm.utils import lpar_builder as lpar_bldr
from pypowervm.utils import uuid as pvm_uuid
from pypowervm.wrappers import base_partition as pvm_bp
from pypowervm.wrappers import managed_system as pvm_ms

from ibmvirt.conf import agent_powervm
from ibmvirt.emulators.novalink import app, inventory
from tests.neutron.base import Ml2TestCase

# pypowervm warns about plain http on every logon; the emulator is on loopback.
logging.getLogger("pypowervm.adapter").setLevel(logging.ERROR)


class _Network(dict):
    """The part of Nova's network model vif.py reads (no VLAN in its meta:
    the binding's vif_details carry it)."""

    def get_meta(self, key, default=None):
        return default


def vif_of(port: dict) -> dict:
    """The VIF Nova builds from a bound port (what vif.py reads of it)."""
    return {
        "id": port["id"],
        "address": port["mac_address"],
        "type": port["binding:vif_type"],
        "details": port["binding:vif_details"],
        "network": _Network(),
    }


def small_inventory(**changes) -> dict:
    inv = copy.deepcopy(inventory.load("small"))
    for key, value in changes.items():
        section, _, name = key.partition("__")
        inv[section][name] = value
    return inv


class NovaLinkAgentTestCase(Ml2TestCase):
    """ML2 plus an emulated PowerVM host the agent under test logs on to."""

    inventory: str | dict = "small"
    exception_interval = 0.2

    def setUp(self):
        super().setUp()
        token_dir = tempfile.mkdtemp(prefix="ibmvirt-nl-")
        self.addCleanup(shutil.rmtree, token_dir, True)
        self.novalink = app.start(self.inventory, token_dir=token_dir, event_wait=0.3)
        self.addCleanup(self.novalink.stop)
        self.nl_control = self.novalink.httpd.RequestHandlerClass.control
        agent_powervm.register_sea_opts(cfg.CONF)
        agent_powervm.register_sriov_opts(cfg.CONF)
        for name, value in {
            "novalink_host": "127.0.0.1",
            "novalink_port": self.novalink.port,
            "novalink_protocol": "http",
            "novalink_username": "neo",
            "novalink_password": "passw0rd",
            "vios_ready_timeout": 0,
        }.items():
            cfg.CONF.set_override(name, value, "powervm")
        cfg.CONF.set_override("exception_interval", self.exception_interval, "AGENT")
        cfg.CONF.set_override("host", "host1")
        session = pvm_adpt.Session(
            "127.0.0.1", "neo", "passw0rd", protocol="http", port=self.novalink.port, conn_tries=1
        )
        self.addCleanup(session._logoff)
        #: Nova's side: its own session, as nova-compute has.
        self.nova = pvm_adpt.Adapter(session)
        self.host = pvm_ms.System.get(self.nova)[0]

    # -- Nova's side --------------------------------------------------------------
    def make_lpar(self, name: str = "vm1"):
        attrs = {
            lpar_bldr.NAME: name,
            lpar_bldr.MEM: 1024,
            lpar_bldr.VCPU: 1,
            lpar_bldr.PROC_UNITS: 0.1,
            lpar_bldr.ENV: pvm_bp.LPARType.AIXLINUX,
            lpar_bldr.UUID: pvm_uuid.convert_uuid_to_pvm(str(uuidlib.uuid4())).upper(),
        }
        stdz = lpar_bldr.DefaultStandardize(self.host)
        return lpar_bldr.LPARBuilder(self.nova, attrs, stdz).build().create(parent=self.host)

    def mgmt_partition(self):
        return pvm_par.get_mgmt_partition(self.nova)

    # -- the agent -----------------------------------------------------------------
    def wait_until(self, check, timeout: float = 20.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                self.fail(f"{what} not reached after {timeout} s")
            time.sleep(0.05)

    def settle(self, manager) -> None:
        """Let the agent's worker finish what the feed gave it so far."""
        time.sleep(0.4)  # a long poll (event_wait 0.3 s) delivers what happened
        self.assertTrue(manager.worker.wait_idle(timeout=20), manager.worker.pending())

    def novalink_requests(self, pattern: str | None = None, method: str | None = None) -> list:
        """API requests the emulator answered (the event feed's long polls left out)."""
        import re

        rx = re.compile(pattern) if pattern else None
        return [
            r
            for r in self.nl_control.log.records()
            if "/Event" not in r.path
            and (method is None or r.method == method)
            and (rx is None or rx.search(r.path))
        ]

    def novalink_down(self) -> None:
        """Every API request dropped without an answer, as when pvm-rest is stopped."""
        self.nl_control.injector.add(None, r"/rest/api/", drop=True, times=10**9)

    def novalink_up(self) -> None:
        self.nl_control.injector.reset()
