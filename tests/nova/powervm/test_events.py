"""What NovaLink's own behaviour looks like through Nova: LPARs changed behind
Nova's back, ETag conflicts, busy VIOSes, expired sessions."""

from __future__ import annotations

import pypowervm.adapter as pvm_adpt
from nova.compute import power_state
from pypowervm.tasks import power as pvm_power
from pypowervm.tasks import power_opts as pvm_popts
from pypowervm.wrappers import logical_partition as pvm_lpar

from ibmvirt.sandbox import powervm


class TestOutOfBand(powervm.PowerVMSingleComputeTestBase):
    def _operator_session(self):
        """A NovaLink CLI user's own session (not the driver's)."""
        session = pvm_adpt.Session(
            "127.0.0.1", "neo", "passw0rd", protocol="http", port=self.novalink.port
        )
        self.addCleanup(session._logoff)
        return pvm_adpt.Adapter(session)

    def test_an_lpar_stopped_behind_novas_back_shows_shutdown(self):
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}])
        (lpar,) = self.nl_view.lpars().values()
        sync = self.computes["compute"].manager._sync_power_states
        synced = []
        self.useFixture(
            __import__("fixtures").MonkeyPatch(
                "nova.compute.manager.ComputeManager._sync_power_states",
                lambda *a, **k: synced.append(1) or sync(*a, **k),
            )
        )
        adapter = self._operator_session()
        wrapper = pvm_lpar.LPAR.get(adapter, uuid=lpar["uuid"])
        pvm_power.PowerOp.stop(wrapper, opts=pvm_popts.PowerOffOpts().vsp_hard())

        def shut_down():
            s = self.api.get_server(server["id"])
            return s if s["OS-EXT-STS:power_state"] == power_state.SHUTDOWN else None

        server = powervm.wait_for(shut_down, "Nova to see the LPAR stopped")
        self.assertEqual([], synced, "a periodic power-state sync ran")
        # Nova stops an instance that shut down by itself (SHUTOFF), as for any driver.
        server = self._wait_for_state_change(server, "SHUTOFF")
        self.assertEqual(
            "not activated", self.nl_view.lpars()[next(iter(self.nl_view.lpars()))]["state"]
        )

    def test_the_power_state_sync_costs_at_most_one_request(self):
        servers = [self.boot_from_image([]) for _ in range(3)]
        driver = self.computes["compute"].manager.driver
        log = self.nl_control.log
        driver.host.states.invalidate()  # as after a lost event feed
        before = len(log.records())
        for s in servers:
            inst = __import__("nova").objects.Instance.get_by_uuid(
                __import__("nova").context.get_admin_context(), s["id"]
            )
            self.assertEqual(power_state.RUNNING, driver.get_info(inst).state)
        reads = [r for r in log.records()[before:] if "/Event" not in r.path]
        self.assertEqual(1, len(reads), reads)
        self.assertIn("quick/All", reads[0].path)


class TestNovaLinkHiccups(powervm.PowerVMSingleComputeTestBase):
    def test_etag_conflicts_on_the_vios_are_absorbed(self):
        vios = next(
            v
            for v in self.novalink.emu.store.list("VirtualIOServer")
            if v.field("PartitionName") == "vios1"
        )
        rule = self.nl_control.injector.add(
            "POST",
            rf"VirtualIOServer/{vios.uuid}\?group=",
            status=412,
            times=2,
            message="[EMUL0099] etag changed",
        )
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}], config_drive=True)
        self.assertEqual("ACTIVE", server["status"])
        self.assertEqual(2, rule.fired)
        self.assertEqual(2, len([m for m in self.nl_view.scsi_mappings() if m[0] == "vios1"]))

    def test_a_busy_vios_is_waited_for(self):
        rule = self.nl_control._vios_busy({"vios": "vios1", "method": "POST", "times": 1})
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}])
        self.assertEqual("ACTIVE", server["status"])
        self.assertEqual(1, rule.fired)

    def test_session_expiry_mid_spawn_is_invisible(self):
        self.pvm_neutron.before_plug = lambda port: self.novalink.emu.sessions.expire_all()
        logons = self.nl_control.log.count("PUT", r"/web/Logon")
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}])
        self.assertEqual("ACTIVE", server["status"])
        self.assertGreater(self.nl_control.log.count("PUT", r"/web/Logon"), logons)
        self.novalink.emu.sessions.expire_all()
        server = self._stop_server(server)
        self.assertEqual("SHUTOFF", server["status"])
