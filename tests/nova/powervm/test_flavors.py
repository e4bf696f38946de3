"""Flavor extra specs and image properties reach the LPAR, through the Nova API."""

from __future__ import annotations

from ibmvirt.sandbox import powervm

IBMI_IMAGE = "3a1e2c4d-5b6f-4a7b-8c9d-0e1f2a3b4c5d"


class TestFlavorToLPAR(powervm.PowerVMSingleComputeTestBase):
    def _lpar_xml(self, name):
        emu = self.novalink.emu
        with emu.lock:
            for lp in emu.store.list("LogicalPartition"):
                if lp.field("PartitionName") == name:
                    return lp.elem
        raise AssertionError(f"no LPAR {name}")

    def _boot_with(self, extra_specs, image=powervm.IMAGE_ID, vcpus=2):
        flavor_id = self._create_flavor(memory_mb=4096, vcpu=vcpus, disk=1, extra_spec=extra_specs)
        body = self._build_server(networks=[], image_uuid=image, flavor_id=flavor_id)
        server = self._wait_for_state_change(self.api.post_server({"server": body}), "ACTIVE")
        return server, self._lpar_xml(server["OS-EXT-SRV-ATTR:instance_name"])

    def test_processor_and_memory_specs_arrive_on_the_lpar(self):
        server, el = self._boot_with(
            {
                "powervm:proc_units": "0.4",
                "powervm:min_proc_units": "0.2",
                "powervm:max_proc_units": "1.0",
                "powervm:min_vcpu": "1",
                "powervm:max_vcpu": "4",
                "powervm:min_mem": "2048",
                "powervm:max_mem": "8192",
                "powervm:uncapped": "true",
                "powervm:shared_weight": "100",
                "powervm:availability_priority": "200",
                "powervm:processor_compatibility": "POWER8",
                "powervm:srr_capability": "false",
            }
        )
        text = lambda path: el.findtext(f".//{{*}}{path}")  # noqa: E731
        self.assertEqual(0.4, float(text("DesiredProcessingUnits")))
        self.assertEqual(0.2, float(text("MinimumProcessingUnits")))
        self.assertEqual(1.0, float(text("MaximumProcessingUnits")))
        self.assertEqual("2", text("DesiredVirtualProcessors"))
        self.assertEqual("1", text("MinimumVirtualProcessors"))
        self.assertEqual("4", text("MaximumVirtualProcessors"))
        self.assertEqual("4096", text("DesiredMemory"))
        self.assertEqual("2048", text("MinimumMemory"))
        self.assertEqual("8192", text("MaximumMemory"))
        self.assertEqual("uncapped", text("SharingMode"))
        self.assertEqual("100", text("UncappedWeight"))
        self.assertEqual("200", text("AvailabilityPriority"))
        self.assertEqual("POWER8", text("PendingProcessorCompatibilityMode"))
        self.assertEqual("false", text("SimplifiedRemoteRestartCapable"))
        self.assertEqual("AIX/Linux", text("PartitionType"))
        self._delete_server(server)

    def test_dedicated_processors_arrive_on_the_lpar(self):
        server, el = self._boot_with(
            {"powervm:dedicated_proc": "true", "powervm:dedicated_sharing_mode": "keep_idle_procs"}
        )
        self.assertEqual("true", el.findtext(".//{*}HasDedicatedProcessors"))
        self.assertEqual("keep idle procs", el.findtext(".//{*}SharingMode"))
        self._delete_server(server)

    def test_an_ibmi_image_gives_an_ibmi_lpar_with_tagged_io(self):
        image = dict(self.glance.images[powervm.IMAGE_ID])
        image.update(id=IBMI_IMAGE, name="ibmi-7.5")
        image["properties"] = dict(image["properties"], os_distro="ibmi")
        self.glance.create(None, image, data=powervm._Bytes(powervm.IMAGE_BYTES))
        server, el = self._boot_with({}, image=IBMI_IMAGE)
        self.assertEqual("OS400", el.findtext(".//{*}PartitionType"))
        load_source = el.findtext(".//{*}LoadSource")
        console = el.findtext(".//{*}Console")
        self.assertTrue(load_source and load_source != "0", load_source)
        self.assertTrue(console, console)
        self._delete_server(server)
