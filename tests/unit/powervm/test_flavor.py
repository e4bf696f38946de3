"""Flavor + image -> LPARBuilder attributes, and the built LPAR as the NovaLink
emulator stores it when pypowervm creates it over real HTTP."""

from __future__ import annotations

import gc
import logging

import pypowervm.adapter as pvm_adpt
import pytest
from nova import objects
from pypowervm.utils import lpar_builder as lb
from pypowervm.wrappers import base_partition as pvm_bp
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import managed_system as pvm_ms

from ibmvirt.emulators.novalink import app
from ibmvirt.powervm import flavor as fl

objects.register_all()

UUID = "3F8F4F3A-5C43-4E1B-9D5E-1B2C3D4E5F60"


def _flavor(specs=None, memory_mb=2048, vcpus=2):
    return objects.Flavor(memory_mb=memory_mb, vcpus=vcpus, extra_specs=dict(specs or {}))


def _image(os_distro=None):
    props = {"os_distro": os_distro} if os_distro else {}
    return objects.ImageMeta.from_dict({"properties": props})


def _no_pools(name):
    raise AssertionError("no pool lookup expected")


def _attrs(specs=None, image=None, pools=_no_pools, **kw):
    return fl.lpar_attributes(
        _flavor(specs, **kw),
        image or _image(),
        name="inst-1",
        pvm_uuid=UUID,
        shared_proc_pool_id=pools,
    )


def _refused(specs, key, *fragments, **kw):
    with pytest.raises(fl.InvalidExtraSpec) as err:
        _attrs(specs, **kw)
    assert err.value.key == key
    for f in (key, *fragments):
        assert f in str(err.value)
    return err.value


# ---- lpar_attributes ----------------------------------------------------------------------
def test_base_attributes_and_srr_default():
    attrs = _attrs({"hw:cpu_policy": "shared", "quota:cpu_shares": "10"})
    assert attrs == {
        lb.NAME: "inst-1",
        lb.UUID: UUID,
        lb.MEM: 2048,
        lb.VCPU: 2,
        lb.ENV: pvm_bp.LPARType.AIXLINUX,
        lb.SRR_CAPABLE: True,
    }


def test_ibmi_image_gives_os400():
    assert _attrs(image=_image("ibmi"))[lb.ENV] == pvm_bp.LPARType.OS400
    assert _attrs(image=_image("rhel"))[lb.ENV] == pvm_bp.LPARType.AIXLINUX
    assert _attrs(image=objects.ImageMeta.from_dict({}))[lb.ENV] == pvm_bp.LPARType.AIXLINUX


def test_each_key_maps_to_its_attribute():
    attrs = _attrs(
        {
            "powervm:min_mem": "1024",
            "powervm:max_mem": "4096",
            "powervm:min_vcpu": "1",
            "powervm:max_vcpu": "4",
            "powervm:proc_units": "0.5",
            "powervm:min_proc_units": "0.1",
            "powervm:max_proc_units": "2.0",
            "powervm:uncapped": "false",
            "powervm:availability_priority": "200",
            "powervm:processor_compatibility": "POWER6+",
            "powervm:srr_capability": "false",
            "powervm:enable_lpar_metric": "true",
            "powervm:ppt_ratio": "1:1024",
            "powervm:secure_boot": "2",
        }
    )
    assert attrs[lb.MIN_MEM] == 1024 and attrs[lb.MAX_MEM] == 4096
    assert (attrs[lb.MIN_VCPU], attrs[lb.MAX_VCPU]) == (1, 4)
    assert (attrs[lb.MIN_PROC_U], attrs[lb.PROC_UNITS], attrs[lb.MAX_PROC_U]) == (0.1, 0.5, 2.0)
    assert attrs[lb.SHARING_MODE] == pvm_bp.SharingMode.CAPPED
    assert attrs[lb.AVAIL_PRIORITY] == 200
    assert attrs[lb.PROC_COMPAT] == "POWER6_Plus"
    assert attrs[lb.SRR_CAPABLE] is False
    assert attrs[lb.ENABLE_LPAR_METRIC] is True
    assert attrs[lb.PPT_RATIO] == "1:1024"
    assert attrs[lb.SECURE_BOOT] == 2
    attrs = _attrs(
        {
            "powervm:dedicated_proc": "true",
            "powervm:dedicated_sharing_mode": "share_idle_procs_always",
        }
    )
    assert attrs[lb.DED_PROCS] is True
    assert attrs[lb.SHARING_MODE] == pvm_bp.DedicatedSharingMode.SHARE_IDLE_PROCS_ALWAYS
    attrs = _attrs({"powervm:uncapped": "true", "powervm:shared_weight": "0"})
    assert attrs[lb.SHARING_MODE] == pvm_bp.SharingMode.UNCAPPED
    assert attrs[lb.UNCAPPED_WEIGHT] == 0


def test_unknown_and_unappliable_keys_are_refused():
    _refused({"powervm:foo": "bar"}, "powervm:foo", "unknown")
    _refused({"powervm:enforce_affinity_check": "true"}, "powervm:enforce_affinity_check", "1.1.27")
    _refused({"powervm:proc_units": "abc"}, "powervm:proc_units", "'abc'", "0.05")


def test_shared_proc_pool_by_name():
    looked_up = []

    def lookup(name):
        looked_up.append(name)
        return 3

    attrs = fl.lpar_attributes(
        _flavor({"powervm:shared_proc_pool_name": "prod"}),
        _image(),
        name="inst-1",
        pvm_uuid=UUID,
        shared_proc_pool_id=lookup,
    )
    assert attrs[lb.SPP] == 3 and looked_up == ["prod"]

    def missing(name):
        raise LookupError(f"the host has no shared processor pools named {name!r}")

    with pytest.raises(fl.InvalidExtraSpec) as err:
        fl.lpar_attributes(
            _flavor({"powervm:shared_proc_pool_name": "prod"}),
            _image(),
            name="inst-1",
            pvm_uuid=UUID,
            shared_proc_pool_id=missing,
        )
    assert err.value.key == "powervm:shared_proc_pool_name"
    assert "no shared processor pools named 'prod'" in str(err.value)


SHARED_VALUES = {
    "powervm:proc_units": "1.0",
    "powervm:min_proc_units": "1.0",
    "powervm:max_proc_units": "1.0",
    "powervm:uncapped": "true",
    "powervm:shared_weight": "10",
    "powervm:shared_proc_pool_name": "DefaultPool",
}


@pytest.mark.parametrize("key", fl.SHARED_ONLY)
def test_shared_only_keys_conflict_with_dedicated(key):
    specs = {key: SHARED_VALUES[key]}
    _refused({"powervm:dedicated_proc": "true", **specs}, key, "dedicated_proc=true")
    attrs = _attrs({"powervm:dedicated_proc": "false", **specs}, pools=lambda name: 0)
    assert attrs[lb.DED_PROCS] is False


def test_dedicated_sharing_mode_needs_dedicated_proc():
    _refused(
        {"powervm:dedicated_sharing_mode": "keep_idle_procs"},
        "powervm:dedicated_sharing_mode",
        "dedicated_proc=true",
    )
    _refused(
        {"powervm:dedicated_proc": "false", "powervm:dedicated_sharing_mode": "keep_idle_procs"},
        "powervm:dedicated_sharing_mode",
    )


def test_weight_of_a_capped_lpar_is_refused():
    _refused(
        {"powervm:uncapped": "false", "powervm:shared_weight": "100"},
        "powervm:shared_weight",
        "capped",
    )


def test_bounds_against_the_flavor():
    # Exactly the flavor's values are accepted, one past refused.
    _attrs({"powervm:min_mem": "2048", "powervm:max_mem": "2048"})
    _refused({"powervm:min_mem": "2304"}, "powervm:min_mem", "2048")
    _refused({"powervm:max_mem": "1792"}, "powervm:max_mem", "2048")
    _attrs({"powervm:min_vcpu": "2", "powervm:max_vcpu": "2"})
    _refused({"powervm:min_vcpu": "3"}, "powervm:min_vcpu")
    _refused({"powervm:max_vcpu": "1"}, "powervm:max_vcpu")
    _attrs({"powervm:proc_units": "0.5", "powervm:min_proc_units": "0.5"})
    _refused(
        {"powervm:proc_units": "0.5", "powervm:min_proc_units": "0.55"}, "powervm:min_proc_units"
    )
    _refused(
        {"powervm:proc_units": "0.5", "powervm:max_proc_units": "0.45"}, "powervm:max_proc_units"
    )
    _refused(
        {"powervm:min_proc_units": "0.6", "powervm:max_proc_units": "0.5"},
        "powervm:min_proc_units",
    )


def test_processing_units_per_virtual_processor():
    # 0.05 to 1.0 units per virtual processor: 4 vCPUs take 0.2 to 4.0.
    _attrs({"powervm:proc_units": "0.2"}, vcpus=4)
    _attrs({"powervm:proc_units": "4.0"}, vcpus=4)
    _refused({"powervm:proc_units": "0.15"}, "powervm:proc_units", "0.2 to 4", vcpus=4)
    _refused({"powervm:proc_units": "4.05"}, "powervm:proc_units", vcpus=4)
    # The minimum units (defaulting to proc_units) must fit the minimum VPs.
    _refused(
        {"powervm:proc_units": "2.0", "powervm:min_vcpu": "1"},
        "powervm:proc_units",
        "powervm:min_vcpu",
        vcpus=2,
    )
    _attrs(
        {"powervm:proc_units": "2.0", "powervm:min_vcpu": "1", "powervm:min_proc_units": "1.0"},
        vcpus=2,
    )
    _refused(
        {"powervm:proc_units": "0.5", "powervm:max_vcpu": "20", "powervm:max_proc_units": "0.95"},
        "powervm:max_proc_units",
        vcpus=2,
    )


# ---- build_lpar against the NovaLink emulator -----------------------------------------------
@pytest.fixture
def novalink(tmp_path):
    srv = app.start("small", token_dir=str(tmp_path))
    logging.getLogger("pypowervm.adapter").setLevel(logging.ERROR)
    sess = pvm_adpt.Session(
        "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
    )
    adapter = pvm_adpt.Adapter(sess)
    host = pvm_ms.System.get(adapter)[0]
    yield adapter, host
    sess._logoff()
    gc.collect()
    srv.stop()


def _spawn(novalink, specs=None, image=None, factor=0.5, weight=64, **kw):
    """Build and create the LPAR, then read it back from the emulator."""
    adapter, host = novalink
    attrs = fl.lpar_attributes(
        _flavor(specs, **kw),
        image or _image(),
        name="inst-1",
        pvm_uuid=UUID,
        shared_proc_pool_id=lambda n: fl.shared_proc_pool_id(adapter, host, n),
    )
    lpar_w = fl.build_lpar(adapter, host, attrs, proc_units_factor=factor, uncapped_weight=weight)
    lpar_w.create(parent=host)
    return pvm_lpar.LPAR.get(adapter, uuid=UUID)


def test_defaults_arrive(novalink):
    lpar = _spawn(novalink, factor=0.25, weight=99, vcpus=4, memory_mb=4096)
    assert lpar.name == "inst-1" and lpar.uuid == UUID
    assert lpar.env == pvm_bp.LPARType.AIXLINUX
    mem = lpar.mem_config
    assert (mem.min, mem.desired, mem.max) == (4096, 4096, 4096)
    proc = lpar.proc_config
    assert not proc.has_dedicated and proc.sharing_mode == pvm_bp.SharingMode.UNCAPPED
    shr = proc.shared_proc_cfg
    assert (shr.min_units, shr.desired_units, shr.max_units) == (1.0, 1.0, 1.0)
    assert (shr.min_virtual, shr.desired_virtual, shr.max_virtual) == (4, 4, 4)
    assert shr.uncapped_weight == 99 and shr.pool_id == 0
    assert lpar.srr_enabled is True
    assert lpar.avail_priority == 127
    assert lpar.pending_proc_compat_mode == "default"
    assert lpar.allow_perf_data_collection is False


def test_shared_processor_specs_arrive(novalink):
    lpar = _spawn(
        novalink,
        {
            "powervm:min_mem": "1024",
            "powervm:max_mem": "8192",
            "powervm:min_vcpu": "1",
            "powervm:max_vcpu": "4",
            "powervm:proc_units": "0.5",
            "powervm:min_proc_units": "0.05",
            "powervm:max_proc_units": "2.5",
            "powervm:uncapped": "true",
            "powervm:shared_weight": "255",
            "powervm:availability_priority": "255",
            "powervm:processor_compatibility": "POWER6+",
            "powervm:srr_capability": "false",
            "powervm:shared_proc_pool_name": "DefaultPool",
            "powervm:enable_lpar_metric": "true",
        },
    )
    mem = lpar.mem_config
    assert (mem.min, mem.desired, mem.max) == (1024, 2048, 8192)
    proc = lpar.proc_config
    assert not proc.has_dedicated and proc.sharing_mode == pvm_bp.SharingMode.UNCAPPED
    shr = proc.shared_proc_cfg
    assert (shr.min_units, shr.desired_units, shr.max_units) == (0.05, 0.5, 2.5)
    assert (shr.min_virtual, shr.desired_virtual, shr.max_virtual) == (1, 2, 4)
    assert shr.uncapped_weight == 255 and shr.pool_id == 0
    assert lpar.avail_priority == 255
    assert lpar.pending_proc_compat_mode == "POWER6_Plus"
    assert lpar.srr_enabled is False
    assert lpar.allow_perf_data_collection is True


def test_capped_lpar_arrives(novalink):
    lpar = _spawn(
        novalink, {"powervm:uncapped": "false", "powervm:availability_priority": "0"}, vcpus=1
    )
    assert lpar.proc_config.sharing_mode == pvm_bp.SharingMode.CAPPED
    assert lpar.proc_config.shared_proc_cfg.desired_units == 0.5
    assert lpar.avail_priority == 0


def test_dedicated_processor_specs_arrive(novalink):
    lpar = _spawn(
        novalink,
        {
            "powervm:dedicated_proc": "true",
            "powervm:dedicated_sharing_mode": "keep_idle_procs",
            "powervm:min_vcpu": "1",
            "powervm:max_vcpu": "3",
            "powervm:processor_compatibility": "POWER8",
        },
    )
    proc = lpar.proc_config
    assert proc.has_dedicated
    assert proc.sharing_mode == pvm_bp.DedicatedSharingMode.KEEP_IDLE_PROCS
    ded = proc.dedicated_proc_cfg
    assert (ded.min, ded.desired, ded.max) == (1, 2, 3)
    assert lpar.pending_proc_compat_mode == "POWER8"


def test_ibmi_lpar_with_tagged_io(novalink):
    lpar = _spawn(novalink, {"powervm:proc_units": "0.25"}, image=_image("ibmi"))
    assert lpar.env == pvm_bp.LPARType.OS400
    tio = lpar.io_config.tagged_io
    assert (tio.load_src, tio.console, tio.alt_load_src) == ("0", "HMC", "NONE")
    assert lpar.proc_config.shared_proc_cfg.desired_units == 0.25
    assert lpar.srr_enabled is True


def test_shared_proc_pool_lookup(novalink):
    adapter, host = novalink
    assert fl.shared_proc_pool_id(adapter, host, "DefaultPool") == 0
    with pytest.raises(LookupError, match="no shared processor pools named 'prod'"):
        fl.shared_proc_pool_id(adapter, host, "prod")
    with pytest.raises(fl.InvalidExtraSpec) as err:
        _spawn(novalink, {"powervm:shared_proc_pool_name": "prod"})
    assert err.value.key == "powervm:shared_proc_pool_name"
    assert [lp.name for lp in pvm_lpar.LPAR.get(adapter) if not lp.is_mgmt_partition] == []


@pytest.mark.parametrize(
    ("specs", "kw", "reason"),
    [
        # The emulated host's logical memory block is 256 MB.
        ({"powervm:max_mem": "4100"}, {}, "logical memory block size"),
        ({}, {"memory_mb": 2000}, "logical memory block size"),
        # A POWER8 host has no POWER9 mode.
        ({"powervm:processor_compatibility": "POWER9"}, {}, "POWER9"),
        # The emulated host cannot set the PPT ratio, nor boot securely.
        ({"powervm:ppt_ratio": "1:1024"}, {}, "physical page table ratio"),
        ({"powervm:secure_boot": "1"}, {}, "secure boot"),
        # More memory than the host has free.
        ({}, {"memory_mb": 1024 * 1024}, "Insufficient available memory"),
    ],
)
def test_host_refusals_become_lpar_build_failed(novalink, specs, kw, reason):
    adapter, host = novalink
    attrs = fl.lpar_attributes(
        _flavor(specs, **kw), _image(), name="inst-1", pvm_uuid=UUID, shared_proc_pool_id=int
    )
    with pytest.raises(fl.LPARBuildFailed) as err:
        fl.build_lpar(adapter, host, attrs, proc_units_factor=0.5, uncapped_weight=64)
    msg = str(err.value)
    assert msg.startswith("Cannot build LPAR inst-1 from the flavor on this host: ")
    assert reason in msg
    assert err.value.code == 400


def test_secure_boot_zero_is_accepted_on_any_host(novalink):
    lpar = _spawn(novalink, {"powervm:secure_boot": "0"})
    assert lpar.pending_secure_boot == 0


def test_bad_proc_units_factor_becomes_lpar_build_failed(novalink):
    adapter, host = novalink
    attrs = _attrs()
    with pytest.raises(fl.LPARBuildFailed, match="between 0.05 and 1.0"):
        fl.build_lpar(adapter, host, attrs, proc_units_factor=1.5, uncapped_weight=64)
