"""NPIV, iSCSI, file and RBD volumes, extend and multi-attach through the Nova
API on an emulated PowerVM host (the SAN is ibmvirt.sandbox's Cinder)."""

from __future__ import annotations

from nova import conf as nova_conf
from nova import context as nova_context
from nova import objects

from ibmvirt.conf import powervm as pvm_conf
from ibmvirt.powervm.volume import npiv
from ibmvirt.sandbox import powervm


def _extend(test, server, volume_id, size_gb):
    test.array.grow(volume_id, size_gb)
    test.api.create_server_external_events(
        [{"name": "volume-extended", "server_uuid": server["id"], "tag": volume_id}]
    )


def _attach(test, server, volume_id):
    test.api.post_server_volume(server["id"], {"volumeAttachment": {"volumeId": volume_id}})
    test._wait_for_volume_attach(server["id"], volume_id)


def _detach(test, server, volume_id):
    test.api.delete_server_volume(server["id"], volume_id)
    test._wait_for_volume_detach(server["id"], volume_id)


class TestNPIV(powervm.PowerVMSingleComputeTestBase):
    def driver_flags(self):
        super().driver_flags()
        ports = {}
        emu = self.novalink.emu
        with emu.lock:
            for v in emu.store.list("VirtualIOServer"):
                for p in v.elem.iter("{*}PhysicalFibreChannelPort"):
                    ports[(v.field("PartitionName"), p.findtext("{*}PortName"))] = p.findtext(
                        "{*}WWPN"
                    )
        # Fabric A: fcs0 of both VIOSes; fabric B: fcs1 of both.
        self.flags(fc_attach_strategy="npiv", fabrics=["A", "B"], group="powervm")
        for fabric in ("A", "B"):
            pvm_conf.fabric_port_wwpns(nova_conf.CONF, fabric)  # registers the option
        self.flags(
            fabric_A_port_wwpns=[ports[("vios1", "fcs0")], ports[("vios2", "fcs0")]],
            fabric_B_port_wwpns=[ports[("vios1", "fcs1")], ports[("vios2", "fcs1")]],
            group="powervm",
        )

    def _instance(self, server):
        ctx = nova_context.get_admin_context(read_deleted="yes")
        return objects.Instance.get_by_uuid(ctx, server["id"], expected_attrs=["system_metadata"])

    def _recorded(self, server) -> dict:
        inst = self._instance(server)
        return {f: npiv.port_maps_of(inst, f) for f in ("A", "B")}

    def _wwpns(self, server) -> set[str]:
        return {w for maps in self._recorded(server).values() for _, p in maps for w in p.split()}

    def test_boot_from_an_npiv_volume_gives_the_lpar_its_own_wwpns(self):
        disks = self.nl_view.physical_volumes()
        server = self.boot_from_volume([])
        recorded = self._recorded(server)
        self.assertEqual([1, 1], [len(recorded["A"]), len(recorded["B"])])
        (volume_id,) = self.array.masking
        # Cinder masked the LUN to the LPAR's WWPNs (both of each pair), not the VIOS ports.
        self.assertEqual({w.lower() for w in self._wwpns(server)}, self.array.masking[volume_id])
        vfc = self.nl_view.vfc_mappings()
        self.assertEqual(2, len(vfc))
        self.assertEqual({p for maps in recorded.values() for _, p in maps}, {w for _, _, w in vfc})
        # One port on each fabric (fcs0 is A, fcs1 is B), and no hdisk anywhere.
        self.assertEqual(["fcs0", "fcs1"], sorted(p for _, p, _ in vfc))
        self.assertEqual([], self.nl_view.scsi_mappings())
        self.assertEqual(disks, self.nl_view.physical_volumes())
        self.assertEqual("mapped", npiv.fabric_state(self._instance(server), "A"))
        self._delete_server(server)
        self.assertEqual([], self.nl_view.vfc_mappings())
        self.assertEqual({}, self.array.masking)
        # The WWPNs stay known after the LPAR is gone (kept in Nova).
        self.assertEqual(recorded, self._recorded(server))

    def test_a_failed_npiv_boot_leaves_no_vfc_mapping(self):
        self.flags(max_attempts=1, group="scheduler")
        self.nl_control.injector.add(
            "PUT", r"/do/PowerOn", status=500, message="[EMUL0099] power on refused"
        )
        server = self.boot_from_volume([], expected_state="ERROR")
        self.assertIn("power on refused", server["fault"]["message"])
        self.assertEqual({}, self.nl_view.lpars())
        self.assertEqual([], self.nl_view.vfc_mappings())

    def test_wwpns_survive_a_restart_and_detach_removes_the_last_mapping(self):
        server = self.boot_from_image([])
        inst = self._instance(server)
        log = self.nl_control.log
        before = self.drivers()["compute"].get_volume_connector(inst)["wwpns"]
        self.assertEqual(4, len(before))
        self.assertEqual([], self.nl_view.vfc_mappings())  # known before any mapping
        self.restart_compute("compute")
        jobs = log.count("PUT", r"ManagedSystem/.*/do/GetNextWWPNs")
        _attach(self, server, self.array.SWAP_OLD_VOL)
        self.assertEqual(jobs, log.count("PUT", r"ManagedSystem/.*/do/GetNextWWPNs"))
        self.assertEqual(
            set(before), self.array.masking[self.array.SWAP_OLD_VOL], "new WWPNs after restart"
        )
        self.assertEqual(2, len(self.nl_view.vfc_mappings()))
        # A second NPIV volume shares the LPAR's ports; its detach keeps them.
        _attach(self, server, self.array.SWAP_NEW_VOL)
        self.assertEqual(2, len(self.nl_view.vfc_mappings()))
        _detach(self, server, self.array.SWAP_NEW_VOL)
        self.assertEqual(2, len(self.nl_view.vfc_mappings()))
        _detach(self, server, self.array.SWAP_OLD_VOL)
        self.assertEqual([], self.nl_view.vfc_mappings())
        self.assertEqual("unmapped", npiv.fabric_state(self._instance(server), "A"))
        self._delete_server(server)

    def test_a_mapping_made_before_a_crash_is_kept_when_the_state_was_not_saved(self):
        server = self.boot_from_image([])
        _attach(self, server, self.array.SWAP_OLD_VOL)
        mappings = self.nl_view.vfc_mappings()
        # nova-compute died after the VIOS update, before recording the state.
        inst = self._instance(server)
        inst.system_metadata.update({"npiv_state_A": "unmapped", "npiv_state_B": "unmapped"})
        inst.save()
        self.restart_compute("compute")
        _attach(self, server, self.array.SWAP_NEW_VOL)
        self.assertEqual(mappings, self.nl_view.vfc_mappings())  # no second set
        self.assertEqual("mapped", npiv.fabric_state(self._instance(server), "B"))
        self._delete_server(server)
        self.assertEqual([], self.nl_view.vfc_mappings())

    def test_a_failure_at_each_request_of_an_attach_leaves_nothing_half_done(self):
        server = self.boot_from_image([])
        log = self.nl_control.log
        start = len(log.records())
        _attach(self, server, self.array.SWAP_OLD_VOL)
        attach_requests = len([r for r in log.records()[start:] if "/Event?" not in r.path])
        _detach(self, server, self.array.SWAP_OLD_VOL)
        self.assertGreater(attach_requests, 3)
        failed = 0
        for nth in range(1, attach_requests + 1):
            fresh = self.boot_from_image([])
            # Any request but the event feed's long polls, which run on their own.
            self.nl_control.injector.add(
                None, r"^(?!.*/Event\?)", nth=nth, status=500, message="[EMUL0099] injected"
            )
            try:
                _attach(self, fresh, self.array.SWAP_OLD_VOL)
            except Exception:  # noqa: BLE001  (the API's answer to the failure)
                failed += 1
            finally:
                self.nl_control.injector.reset()
            ids = [a["volumeId"] for a in self.api.get_server_volumes(fresh["id"])]
            recorded = self._recorded(fresh)
            # WWPNs are recorded for both fabrics or for none.
            self.assertIn(sorted(len(m) for m in recorded.values()), ([0, 0], [1, 1]), nth)
            if self.array.SWAP_OLD_VOL not in ids:
                lpar_wwpns = {p for maps in recorded.values() for _, p in maps}
                left = [w for _, _, w in self.nl_view.vfc_mappings() if w in lpar_wwpns]
                self.assertEqual([], left, f"vFC mapping left after failing request {nth}")
            else:
                _detach(self, fresh, self.array.SWAP_OLD_VOL)
            self._delete_server(fresh)
        self.assertGreater(failed, 0)
        self.assertEqual([], [m for m in self.nl_view.vfc_mappings()])
        self._delete_server(server)


class TestISCSI(powervm.PowerVMSingleComputeTestBase):
    def setUp(self):
        super().setUp()
        self.array.protocol = "iscsi"
        self.flags(volume_use_multipath=True, group="powervm")

    def _sessions(self):
        from ibmvirt.emulators.novalink.state import san

        emu = self.novalink.emu
        with emu.lock:
            return {
                v.field("PartitionName"): san.sessions_of(v)
                for v in emu.store.list("VirtualIOServer")
            }

    def test_boot_from_an_iscsi_volume_logs_in_on_each_vios_and_delete_logs_out(self):
        disks = self.nl_view.physical_volumes()
        server = self.boot_from_volume([])
        pv_maps = [m for m in self.nl_view.scsi_mappings() if m[1].startswith("hdisk")]
        self.assertEqual({"vios1", "vios2"}, {v for v, _ in pv_maps})
        sessions = self._sessions()
        self.assertEqual(2, len(sessions["vios1"]))  # both portals (multipath)
        self.assertEqual(2, len(sessions["vios2"]))
        self._delete_server(server)
        self.assertEqual([], self.nl_view.scsi_mappings())
        self.assertEqual(disks, self.nl_view.physical_volumes())
        self.assertEqual({"vios1": [], "vios2": []}, self._sessions())

    def test_attach_extend_detach_of_an_iscsi_volume(self):
        server = self.boot_from_image([])
        volume = self.array.SWAP_OLD_VOL
        _attach(self, server, volume)
        sizes = self.nl_view.mapped_sizes_gb()
        self.assertEqual([1.0, 1.0], [s for (v, n), s in sizes.items() if n.startswith("hdisk")])
        _extend(self, server, volume, 3)
        sizes = self.nl_view.mapped_sizes_gb()
        self.assertEqual([3.0, 3.0], [s for (v, n), s in sizes.items() if n.startswith("hdisk")])
        _detach(self, server, volume)
        self.assertEqual([], [m for m in self.nl_view.scsi_mappings() if m[1].startswith("hdisk")])
        self.assertEqual({"vios1": [], "vios2": []}, self._sessions())
        self._delete_server(server)

    def test_a_wrong_chap_secret_fails_the_attach_and_leaves_no_session(self):
        server = self.boot_from_image([])
        self.array.chap_secret = lambda volume_id: "not-the-secret"
        original = self.array._export

        def export(protocol, data):
            out = original(protocol, data)
            out["auth_password"] = "wrong"
            return out

        self.array._export = export
        with self.assertRaises(Exception):  # noqa: B017  (the API's 500)
            _attach(self, server, self.array.SWAP_OLD_VOL)
        self.assertEqual([], [m for m in self.nl_view.scsi_mappings() if m[1].startswith("hdisk")])
        self.assertEqual({"vios1": [], "vios2": []}, self._sessions())
        self._delete_server(server)


class TestISCSISinglePathAndDiscoveryCHAP(powervm.PowerVMSingleComputeTestBase):
    """volume_use_multipath False: one session per VIOS, over the first portal
    that answers; discovery CHAP with multipath (pypowervm sends the
    discovery credentials only for a multipath login)."""

    _sessions = TestISCSI._sessions

    def setUp(self):
        super().setUp()
        self.array.protocol = "iscsi"
        self.flags(volume_use_multipath=False, group="powervm")

    def _hdisk_maps(self):
        return [m for m in self.nl_view.scsi_mappings() if m[1].startswith("hdisk")]

    def test_single_path_attach_logs_in_over_one_portal_and_detach_logs_out(self):
        server = self.boot_from_image([])
        volume = self.array.SWAP_OLD_VOL
        _attach(self, server, volume)
        self.assertEqual({"vios1", "vios2"}, {v for v, _ in self._hdisk_maps()})
        sessions = self._sessions()
        self.assertEqual([powervm.ISCSI_PORTALS[0]], [p for _, p in sessions["vios1"]])
        self.assertEqual([powervm.ISCSI_PORTALS[0]], [p for _, p in sessions["vios2"]])
        self.assertFalse(self.array.connectors[-1]["multipath"])
        _detach(self, server, volume)
        self.assertEqual([], self._hdisk_maps())
        self.assertEqual({"vios1": [], "vios2": []}, self._sessions())
        self._delete_server(server)

    def test_discovery_chap_with_multipath_attaches_and_detaches(self):
        self.flags(volume_use_multipath=True, group="powervm")
        self.array.discovery_chap = ("cinder-discovery", "disc-secret-1")
        server = self.boot_from_image([])
        volume = self.array.SWAP_OLD_VOL
        _attach(self, server, volume)
        sessions = self._sessions()
        self.assertEqual(2, len(sessions["vios1"]))
        self.assertEqual(2, len(sessions["vios2"]))
        _detach(self, server, volume)
        self.assertEqual({"vios1": [], "vios2": []}, self._sessions())
        self._delete_server(server)

    def test_a_wrong_discovery_secret_fails_the_attach_and_leaves_no_session(self):
        self.flags(volume_use_multipath=True, group="powervm")
        self.array.discovery_chap = ("cinder-discovery", "disc-secret-1")
        self.array.discovery_secret_sent = "not-the-discovery-secret"
        server = self.boot_from_image([])
        with self.assertRaises(Exception):  # noqa: B017  (the API's 500)
            _attach(self, server, self.array.SWAP_OLD_VOL)
        self.assertEqual([], self._hdisk_maps())
        self.assertEqual({"vios1": [], "vios2": []}, self._sessions())
        self._delete_server(server)


class TestISCSIInitiatorInTheConnector(powervm.PowerVMSingleComputeTestBase):
    """Nova asks for the connector before it knows the volume's type: a host
    that takes iSCSI volumes (the default) names the first VIOS's initiator;
    an FC-only host ([powervm] iscsi_volumes = False) never reads it."""

    def _initiator_reads(self, start):
        return [
            r
            for r in self.nl_control.log.records()[start:]
            if r.method == "PUT" and r.path.split("?")[0].endswith("/do/ISCSIDiscovery")
        ]

    def test_the_connector_names_the_first_vios_initiator(self):
        from ibmvirt.emulators.novalink.state import san

        server = self.boot_from_image([])
        _attach(self, server, self.array.SWAP_OLD_VOL)
        emu = self.novalink.emu
        with emu.lock:
            (vios1,) = [
                v for v in emu.store.list("VirtualIOServer") if v.field("PartitionName") == "vios1"
            ]
            expected = san.initiator_name(vios1)
        self.assertEqual(expected, self.array.connectors[-1]["initiator"])
        self._delete_server(server)

    def test_an_fc_only_host_reads_no_initiator_and_cinder_iscsi_refuses_it(self):
        self.flags(iscsi_volumes=False, group="powervm")
        server = self.boot_from_image([])
        start = len(self.nl_control.log.records())
        _attach(self, server, self.array.SWAP_OLD_VOL)  # Fibre Channel (vSCSI)
        self.assertNotIn("initiator", self.array.connectors[-1])
        self.assertTrue(self.array.connectors[-1]["wwpns"])
        self.assertEqual([], self._initiator_reads(start))
        _detach(self, server, self.array.SWAP_OLD_VOL)
        self.array.protocol = "iscsi"
        with self.assertRaises(Exception):  # noqa: B017  (Cinder's refusal)
            _attach(self, server, self.array.SWAP_NEW_VOL)
        self.assertEqual([], [m for m in self.nl_view.scsi_mappings() if "hdisk" in m[1]])
        self.assertEqual([], self._initiator_reads(start))
        self._delete_server(server)


class TestExtendAndMultiattachFC(powervm.PowerVMSingleComputeTestBase):
    def test_extend_of_a_vscsi_volume_shows_on_every_vios_mapping(self):
        server = self.boot_from_image([])
        volume = self.array.SWAP_OLD_VOL
        _attach(self, server, volume)
        _extend(self, server, volume, 4)
        sizes = self.nl_view.mapped_sizes_gb()
        self.assertEqual([4.0, 4.0], [s for (v, n), s in sizes.items() if n.startswith("hdisk")])
        self._delete_server(server)

    def test_two_servers_share_a_multiattach_volume(self):
        disks = self.nl_view.physical_volumes()
        first = self.boot_from_image([])
        second = self.boot_from_image([])
        volume = self.array.MULTIATTACH_VOL
        _attach(self, first, volume)
        _attach(self, second, volume)
        pv_maps = [m for m in self.nl_view.scsi_mappings() if m[1].startswith("hdisk")]
        # One hdisk per VIOS, mapped to both LPARs.
        self.assertEqual(4, len(pv_maps))
        self.assertEqual(2, len(set(pv_maps)))
        _detach(self, first, volume)
        pv_maps = [m for m in self.nl_view.scsi_mappings() if m[1].startswith("hdisk")]
        self.assertEqual(2, len(pv_maps))
        self.assertEqual(2, len(set(self.nl_view.physical_volumes()) - set(disks)))
        _detach(self, second, volume)
        self.assertEqual(disks, self.nl_view.physical_volumes())
        self._delete_server(first)
        self._delete_server(second)


def _with_io_server(inv: dict) -> dict:
    inv["management_partition"]["io_server"] = True
    return inv


class TestFileAndRBD(powervm.PowerVMSingleComputeTestBase):
    @property
    def inventory(self):
        from ibmvirt.emulators.novalink import inventory

        return _with_io_server(inventory.load("small"))

    def _check(self, protocol, name):
        self.array.protocol = protocol
        server = self.boot_from_image([])
        volume = self.array.SWAP_OLD_VOL
        _attach(self, server, volume)
        sizes = self.nl_view.mapped_sizes_gb()
        self.assertEqual(
            {("novalink", name): 1.0}, {k: v for k, v in sizes.items() if k[1] == name}
        )
        _extend(self, server, volume, 2)
        self.assertEqual(2.0, self.nl_view.mapped_sizes_gb()[("novalink", name)])
        _detach(self, server, volume)
        self.assertNotIn(name, [n for _, n in self.nl_view.scsi_mappings()])
        self._delete_server(server)

    def test_local_file(self):
        self._check("local", f"/srv/cinder/volume-{self.array.SWAP_OLD_VOL}")

    def test_nfs_file(self):
        self._check("nfs", f"/srv/cinder/volume-{self.array.SWAP_OLD_VOL}")

    def test_rbd_image(self):
        self._check("rbd", f"volumes/volume-{self.array.SWAP_OLD_VOL}")

    def test_detach_after_the_lpar_vanished_still_unmaps(self):
        self.array.protocol = "local"
        server = self.boot_from_image([])
        volume = self.array.SWAP_OLD_VOL
        _attach(self, server, volume)
        name = f"/srv/cinder/volume-{volume}"
        self.assertIn(name, [n for _, n in self.nl_view.scsi_mappings()])
        (lpar,) = self.nl_view.lpars().values()
        with self.novalink.emu.lock:
            self.novalink.emu.store.get("LogicalPartition", lpar["uuid"]).elem  # exists
        self._delete_lpar_behind_novas_back(lpar["uuid"])
        _detach(self, server, volume)
        self.assertNotIn(name, [n for _, n in self.nl_view.scsi_mappings()])
        self._delete_server(server)

    def _delete_lpar_behind_novas_back(self, uuid):
        import pypowervm.adapter as pvm_adpt
        from pypowervm.tasks import power as pvm_power
        from pypowervm.tasks import power_opts as pvm_popts
        from pypowervm.wrappers import logical_partition as pvm_lpar

        session = pvm_adpt.Session(
            "127.0.0.1", "neo", "passw0rd", protocol="http", port=self.novalink.port
        )
        self.addCleanup(session._logoff)
        wrapper = pvm_lpar.LPAR.get(pvm_adpt.Adapter(session), uuid=uuid)
        pvm_power.PowerOp.stop(wrapper, opts=pvm_popts.PowerOffOpts().vsp_hard())
        wrapper.refresh().delete()
