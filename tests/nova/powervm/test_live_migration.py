"""Live migration between two emulated NovaLink hosts whose VIOSes share one
SSP, through the Nova API: where the server runs as Nova says and as each
NovaLink holds it, its disks, volumes and ports after the move, refusals,
abort, force-complete, a failure at each NovaLink request, and a restart of
nova-compute mid-migration."""

from __future__ import annotations

import time

from ibmvirt import contract
from ibmvirt.sandbox import powervm

from .test_resize import TwoHosts

NOVALINK_VSWITCH = "NovaLinkVEABridge"


class LiveMigrationHelpers(TwoHosts):
    disk_driver = "ssp"

    def setUp(self):
        super().setUp()
        # What the README asks of PowerVM hosts (a pvm_sea adapter arrives with the LPAR).
        self.flags(live_migration_wait_for_vif_plug=False, group="compute")

    def _start_live_migration(self, server, host="host2"):
        self.api.post_server_action(
            server["id"], {"os-migrateLive": {"host": host, "block_migration": "auto"}}
        )

    def _migration(self, server):
        migs = self.api.api_get(f"/servers/{server['id']}/migrations").body["migrations"]
        return migs[0] if migs else None

    def _all_migrations(self, server):
        return [
            m
            for m in self.api.api_get("/os-migrations").body["migrations"]
            if m["instance_uuid"] == server["id"] and m["migration_type"] == "live-migration"
        ]

    def _wait_migration(self, server, statuses, timeout=60):
        def done():
            migs = self._all_migrations(server)
            return migs and max(migs, key=lambda m: m["id"])["status"] in statuses and migs

        migs = powervm.wait_for(done, f"a live migration in {statuses}", timeout=timeout)
        return max(migs, key=lambda m: m["id"])

    def _settled(self, server, host):
        """The server ACTIVE with no task on ``host`` as Nova says."""

        def ok():
            s = self.api.get_server(server["id"])
            return (
                s["status"] == "ACTIVE"
                and s["OS-EXT-STS:task_state"] is None
                and s["OS-EXT-SRV-ATTR:host"] == host
                and s
            )

        return powervm.wait_for(ok, f"the server ACTIVE on {host}", timeout=90)

    def _live_migrate(self, server, host="host2"):
        self._start_live_migration(server, host)
        self._wait_migration(server, {"completed"})
        server = self._settled(server, host)
        self._computes_idle()
        return server

    def _computes_idle(self):
        """Both nova-computes done with their live-migration tasks (the source's
        last steps follow the destination's; Nova leaves the destination's
        bookkeeping task of a migration refused in its checks behind)."""
        powervm.wait_for(
            lambda: (
                not any(
                    t["name"] == "live_migration"
                    for c in self.computes.values()
                    for t in list(c.manager._in_progress_tasks.values())
                )
            ),
            "the computes' live-migration tasks to end",
        )

    def assert_runs_only_on(self, server, here, there):
        """Exactly one LPAR, running on ``here``; nothing of it on ``there``."""
        name = server["OS-EXT-SRV-ATTR:instance_name"]
        lpar = self._lpar(server, here)
        self.assertIsNotNone(lpar, f"{name} is not on the host Nova names")
        self.assertEqual("running", lpar["state"])
        self.assertNotIn(name, there.lpars())
        self.assertEqual([], [m for m in there.scsi_mappings() if m[1].startswith("hdisk")])
        lu = f"boot_{server['id']}"
        self.assertEqual([], self._mapped(there, lu))

    def _delay_migrations(self, host, seconds):
        self.novalinks[host].emu.jobs.delays["Migrate"] = seconds

    def _lpar_migration_state(self, host, server):
        emu = self.novalinks[host].emu
        with emu.lock:
            for res in emu.store.list("LogicalPartition"):
                if res.field("PartitionName") == server["OS-EXT-SRV-ATTR:instance_name"]:
                    return res.field("MigrationState")
        return None


class TestLiveMigration(LiveMigrationHelpers, powervm.PowerVMSingleComputeTestBase):
    def test_a_running_server_moves_with_its_ssp_disk_and_sea_port(self):
        server = self._boot_on_one(self.small)
        lu = f"boot_{server['id']}"
        lpar = self._lpar(server, self.one)
        macs = [a["mac"] for a in self.one.adapters_of(lpar["uuid"])]
        self._control("compute").log.clear()

        server = self._live_migrate(server)
        self.assertEqual("host2", server["OS-EXT-SRV-ATTR:host"])
        self.assert_runs_only_on(server, self.two, self.one)
        there = self._lpar(server, self.two)
        self.assertEqual(lpar["uuid"], there["uuid"])  # the same partition, moved
        self.assertEqual((2048, 1), (there["memory_mb"], there["vcpus"]))
        self.assertEqual(macs, [a["mac"] for a in self.two.adapters_of(there["uuid"])])
        self.assertEqual(["vios1", "vios2"], self._mapped(self.two, lu))
        self.assertEqual({}, self.one.lpars())
        self.assertEqual([], self.one.scsi_mappings())
        jobs = [
            r.path
            for r in self._control("compute").log.records()
            if r.method == "PUT" and "/do/Migrate" in r.path
        ]
        self.assertEqual(1, len(jobs))
        self.assertTrue(jobs[0].endswith("/do/Migrate"), jobs)
        # And back again, then gone from both.
        server = self._live_migrate(server, "compute")
        self.assert_runs_only_on(server, self.one, self.two)
        self._delete_server(server)
        for view in (self.one, self.two):
            self.assertEqual({}, view.lpars())
            self.assertEqual([], view.scsi_mappings())

    def test_a_server_booted_from_a_vscsi_volume_moves_with_it(self):
        server = self.boot_from_volume(
            [{"port": self.neutron.port_1["id"]}], host="compute", flavor_id=self.small
        )
        (volume_id,) = self.array.masking
        pvs_one = len(self.one.physical_volumes())
        server = self._live_migrate(server)
        self.assert_runs_only_on(server, self.two, self.one)
        self.assertEqual(
            ["vios1", "vios2"],
            sorted(v for v, stg in self.two.scsi_mappings() if stg.startswith("hdisk")),
        )
        # The source's VIOSes forgot the hdisk; Cinder has one attachment left, host2's.
        self.assertLess(len(self.one.physical_volumes()), pvs_one)
        (attachment,) = self.array.volume_to_attachment[volume_id].values()
        wwpns = {w.lower() for w in attachment["connector"]["wwpns"]}
        self.assertTrue(wwpns)
        self.assertEqual(set(), wwpns & {w.lower() for w in self._vios_wwpns("compute")})
        self.assertLessEqual(wwpns, {w.lower() for w in self._vios_wwpns("host2")})
        self._delete_server(server)
        self.assertEqual({}, self.two.lpars())
        self.assertEqual([], self.two.scsi_mappings())
        self.assertEqual({}, self.array.masking)

    def _vios_wwpns(self, host):
        emu = self.novalinks[host].emu
        with emu.lock:
            return [
                w.text.replace(":", "")
                for v in emu.store.list("VirtualIOServer")
                for w in v.elem.iter("{*}WWPN")
                if w.text
            ]

    def test_an_ovs_port_gets_a_trunk_on_a_free_vlan_of_the_destination(self):
        port = self.neutron.port_1
        self.pvm_neutron.vif_types[port["id"]] = contract.VIF_TYPE_OVS
        server = self._boot_on_one(self.small)
        # host2's NovaLink switch already uses the first free VLAN for another trunk.
        (trunk_one,) = [t for t in self.one.trunks() if t["vswitch"] == NOVALINK_VSWITCH]
        server = self._live_migrate(server)
        self.assert_runs_only_on(server, self.two, self.one)
        (trunk_two,) = [t for t in self.two.trunks() if t["vswitch"] == NOVALINK_VSWITCH]
        self.assertEqual(powervm.ovs_devname(port["id"]), trunk_two["dev"])
        self.assertIn(f"vm-uuid={server['id']}", trunk_two["ext_ids"])
        there = self._lpar(server, self.two)
        (cna,) = [
            a
            for a in self.two.adapters_of(there["uuid"])
            if a["mac"] == contract.pvm_mac(port["mac_address"])
        ]
        self.assertEqual(trunk_two["vlan"], cna["vlan"])  # the adapter took the trunk's VLAN
        self.assertNotIn(trunk_one["mac"], {t["mac"] for t in self.one.trunks()})
        self.assertEqual([], [t for t in self.one.trunks() if t["vswitch"] == NOVALINK_VSWITCH])
        self.assertEqual("ACTIVE", self.neutron.show_port(port["id"])["port"]["status"])
        self._delete_server(server)
        self.assertEqual([], [t for t in self.two.trunks() if t["vswitch"] == NOVALINK_VSWITCH])

    def test_an_sriov_logical_port_is_refused_before_anything_changes(self):
        server = self._boot_on_one(self.small)
        lpar = self._lpar(server, self.one)
        _assign_sriov_logical_port(self.novalinks["compute"], lpar["uuid"])
        self._start_live_migration(server)
        mig = self._wait_migration(server, {"error", "failed"})
        self.assertEqual("compute", mig["source_compute"])
        server = self._settled(server, "compute")
        self.assert_runs_only_on(server, self.one, self.two)
        fault = _action_fault(self, server)
        self.assertIn("SR-IOV", fault)

    def test_a_config_drive_is_refused_with_a_message(self):
        server = self._boot_on_one(self.small, config_drive=True)
        self._start_live_migration(server)
        self._wait_migration(server, {"error", "failed"})
        server = self._settled(server, "compute")
        self.assert_runs_only_on(server, self.one, self.two)
        self.assertIn("config drive", _action_fault(self, server))

    def test_abort_stops_the_job_and_the_server_stays_on_the_source(self):
        server = self._boot_on_one(self.small)
        self._delay_migrations("compute", 6.0)
        self._start_live_migration(server)
        mig = self._wait_migration(server, {"running"})
        powervm.wait_for(
            lambda: self._lpar_migration_state("compute", server) == "Migration_In_Progress",
            "the memory copy",
        )
        self.api.api_delete(f"/servers/{server['id']}/migrations/{mig['id']}")
        mig = self._wait_migration(server, {"cancelled"})
        server = self._settled(server, "compute")
        self.assert_runs_only_on(server, self.one, self.two)
        self.assertEqual("Not_Migrating", self._lpar_migration_state("compute", server))
        aborts = self._control("compute").log.count("PUT", r"/do/MigrateAbort$")
        self.assertEqual(1, aborts)
        # It can move later.
        self._delay_migrations("compute", 0)
        server = self._live_migrate(server)
        self.assert_runs_only_on(server, self.two, self.one)

    def test_force_complete_is_refused_and_the_migration_goes_on(self):
        server = self._boot_on_one(self.small)
        self._delay_migrations("compute", 3.0)
        self._start_live_migration(server)
        mig = self._wait_migration(server, {"running"})
        self.api.api_post(
            f"/servers/{server['id']}/migrations/{mig['id']}/action", {"force_complete": None}
        )
        failed = self._wait_for_action_fail_completion(
            server, "live_migration_force_complete", "compute_live_migration_force_complete"
        )
        self.assertIn("PowerVM cannot hurry a partition migration", failed.get("details") or "")
        self._wait_migration(server, {"completed"})
        server = self._settled(server, "host2")
        self.assert_runs_only_on(server, self.two, self.one)

    def test_a_restart_of_the_source_mid_migration_leaves_it_running_there(self):
        server = self._boot_on_one(self.small)
        self._delay_migrations("compute", 8.0)
        self._start_live_migration(server)
        self._wait_migration(server, {"running"})
        powervm.wait_for(
            lambda: self._lpar_migration_state("compute", server) == "Migration_In_Progress",
            "the memory copy",
        )
        self.restart_compute("compute")  # Nova aborts what it finds migrating
        mig = self._wait_migration(server, {"error"})
        self.assertEqual("host2", mig["dest_compute"])
        server = self._settled(server, "compute")
        self.assert_runs_only_on(server, self.one, self.two)
        self.assertEqual("Not_Migrating", self._lpar_migration_state("compute", server))
        # Nothing in the old nova-compute carries on: the migration does not
        # complete later behind Nova's back.
        time.sleep(1.0)
        self.assert_runs_only_on(self.api.get_server(server["id"]), self.one, self.two)
        self._delay_migrations("compute", 0)
        server = self._live_migrate(server)
        self.assert_runs_only_on(server, self.two, self.one)


class TestRefusals(LiveMigrationHelpers, powervm.PowerVMSingleComputeTestBase):
    novalink_host_settings = {
        "host2": {"proc_compat_modes": ["default", "POWER6", "POWER7"]},
    }

    def test_a_processor_mode_the_destination_lacks_is_refused_and_power7_moves(self):
        server = self._boot_on_one(self.small)
        self._start_live_migration(server)
        self._wait_migration(server, {"error", "failed"})
        server = self._settled(server, "compute")
        self.assert_runs_only_on(server, self.one, self.two)
        fault = _action_fault(self, server)
        self.assertIn("processor compatibility mode POWER8", fault)
        self.assertIn("powervm:processor_compatibility", fault)

        p7 = self._create_flavor(
            name="pvm.p7",
            memory_mb=2048,
            vcpu=1,
            disk=1,
            ephemeral=0,
            extra_spec={"powervm:processor_compatibility": "POWER7"},
        )
        self._delete_server(server)  # its port, for the next one
        other = self._boot_on_one(p7)
        other = self._live_migrate(other)
        self.assert_runs_only_on(other, self.two, self.one)


class TestVifPlugWait(LiveMigrationHelpers, powervm.PowerVMSingleComputeTestBase):
    def test_waiting_for_vif_plugged_is_refused_with_the_option_to_change(self):
        self.flags(live_migration_wait_for_vif_plug=True, group="compute")
        server = self._boot_on_one(self.small)
        self._start_live_migration(server)
        self._wait_migration(server, {"error", "failed"})
        server = self._settled(server, "compute")
        self.assert_runs_only_on(server, self.one, self.two)
        self.assertIn("live_migration_wait_for_vif_plug = False", _action_fault(self, server))


class TestNoMigrationSlot(LiveMigrationHelpers, powervm.PowerVMSingleComputeTestBase):
    novalink_host_settings = {"host2": {"max_active_migrations": 0}}

    def test_a_destination_without_a_free_migration_slot_refuses(self):
        server = self._boot_on_one(self.small)
        self._start_live_migration(server)
        self._wait_migration(server, {"error", "failed"})
        server = self._settled(server, "compute")
        self.assert_runs_only_on(server, self.one, self.two)
        self.assertIn("0 of the 0 active partition migrations", _action_fault(self, server))


def _action_fault(test, server) -> str:
    """The newest live-migration action's failed events' tracebacks and messages."""
    api = test.api
    for action in api.get_instance_actions(server["id"]):
        if action["action"] != "live-migration":
            continue
        detail = api.api_get(
            f"/servers/{server['id']}/os-instance-actions/{action['request_id']}"
        ).body["instanceAction"]
        return " ".join(
            (e.get("traceback") or "") + (e.get("details") or "")
            for e in detail["events"]
            if e.get("result") == "Error"
        )
    return ""


def _assign_sriov_logical_port(server, lpar_uuid: str) -> None:
    """An SR-IOV logical port assigned to the LPAR behind Nova's back (pypowervm)."""
    import pypowervm.adapter as pvm_adpt
    from pypowervm.wrappers import iocard as pvm_card
    from pypowervm.wrappers import logical_partition as pvm_lpar
    from pypowervm.wrappers import managed_system as pvm_ms

    sess = pvm_adpt.Session(
        "127.0.0.1", "neo", "passw0rd", protocol="http", port=server.port, conn_tries=1
    )
    try:
        adapter = pvm_adpt.Adapter(sess)
        sys_w = pvm_ms.System.get(adapter)[0]
        sriov = next(a for a in sys_w.asio_config.sriov_adapters if a.mode == "Sriov")
        port = sriov.phys_ports[0]
        lport = pvm_card.SRIOVEthLPort.bld(adapter, sriov.sriov_adap_id, port.port_id)
        lport.create(parent=pvm_lpar.LPAR.get(adapter, uuid=lpar_uuid))
    finally:
        sess._logoff()
