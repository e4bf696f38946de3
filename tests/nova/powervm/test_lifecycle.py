"""A server's life on an emulated PowerVM host, through the Nova API."""

from __future__ import annotations

from nova.compute import power_state

from ibmvirt.sandbox import powervm


class TestLocalDiskLifecycle(powervm.PowerVMSingleComputeTestBase):
    def _nothing_left(self, before_disks):
        view = self.nl_view
        self.assertEqual({}, view.lpars())
        self.assertEqual(before_disks, [d for d in view.virtual_disks() if not d.startswith("i_")])
        self.assertEqual([], [m for m in view.optical_media() if m.startswith("cfg_")])
        self.assertEqual([], view.scsi_mappings())
        self.assertEqual([], view.client_macs())

    def test_boot_stop_start_reboot_delete(self):
        before = self.nl_view.virtual_disks()
        server = self.boot_from_image([{"port": self.neutron.port_1["id"]}], config_drive=True)
        lpars = self.nl_view.lpars()
        self.assertEqual(1, len(lpars))
        ((name, lpar),) = lpars.items()
        self.assertEqual("running", lpar["state"])
        self.assertEqual(power_state.RUNNING, server["OS-EXT-STS:power_state"])
        # Boot disk copied from the cached image, mapped with the config drive.
        disks = self.nl_view.virtual_disks()
        boot = "b_" + server["id"].replace("-", "")[:13]
        self.assertIn(boot, disks)
        self.assertTrue(any(d.startswith("i_") for d in disks))
        mapped = {stg for _, stg in self.nl_view.scsi_mappings()}
        self.assertIn(boot, mapped)
        self.assertTrue(any(m.startswith("cfg_") for m in mapped))
        adapters = self.nl_view.adapters_of(lpar["uuid"])
        port_mac = self.neutron.port_1["mac_address"].replace(":", "").upper()
        self.assertIn({"mac": port_mac, "vlan": str(powervm.NETWORK_VLAN)}, adapters)

        server = self._stop_server(server)
        self.assertEqual("not activated", self.nl_view.lpars()[name]["state"])
        server = self._start_server(server)
        self.assertEqual("running", self.nl_view.lpars()[name]["state"])
        for kind in ("SOFT", "HARD"):
            self.api.post_server_action(server["id"], {"reboot": {"type": kind}})
            server = self._wait_for_state_change(server, "ACTIVE")
            self.assertEqual("running", self.nl_view.lpars()[name]["state"])

        self._delete_server(server)
        self._nothing_left(before)


class TestPowerOff(powervm.PowerVMSingleComputeTestBase):
    def _record_power_offs(self):
        jobs = self.novalink.emu.jobs
        key = ("LogicalPartition", "PowerOff")
        real = jobs._ops[key]
        seen = []

        def recording(job):
            seen.append((job.params.get("operation"), job.params.get("immediate")))
            return real(job)

        jobs._ops[key] = recording
        return seen

    def test_stop_asks_the_os_first_and_delete_stops_at_once(self):
        server = self.boot_from_image([])
        seen = self._record_power_offs()
        server = self._stop_server(server)  # Nova gives a clean-shutdown timeout
        # pypowervm's progressive power-off: OS immediate shutdown first.
        self.assertEqual([("osshutdown", "true")], seen)
        server = self._start_server(server)
        del seen[:]
        self._delete_server(server)
        self.assertEqual([("shutdown", "true")], seen)  # VSP hard: immediate

    def test_stop_without_rmc_falls_back_to_the_vsp(self):
        server = self.boot_from_image([])
        emu = self.novalink.emu
        with emu.lock:
            (lp,) = [
                p
                for p in emu.store.list("LogicalPartition")
                if p.field("IsManagementPartition") != "true"
            ]
            lp.elem.find(".//{*}ResourceMonitoringControlState").text = "inactive"
            lp.bump()
        seen = self._record_power_offs()
        server = self._stop_server(server)
        self.assertEqual("SHUTOFF", server["status"])
        # No RMC, no OS shutdown: a normal (not immediate) VSP power-off.
        self.assertEqual([("shutdown", None)], seen)
        self.assertEqual("not activated", next(iter(self.nl_view.lpars().values()))["state"])
