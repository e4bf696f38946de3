"""SR-IOV Ethernet logical ports: assigned to partitions with pypowervm's
SRIOVEthLPort wrapper, counted on the host's physical ports, refused when the
port or adapter cannot hold them, and created on the hosting VIOS for every
vNIC backing device (``RelatedSRIOVLogicalPort``)."""

from __future__ import annotations

import logging
import re

import pypowervm.adapter as pvm_adpt
import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import power as pvm_power
from pypowervm.wrappers import iocard as pvm_card
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import network as pvm_net
from pypowervm.wrappers import virtual_io_server as pvm_vios

from ibmvirt.emulators.novalink import app, errors, inventory

from .test_fidelity import NOT_MODELLED, _captured, _filled, missing_fields
from .test_lpar import build, refusal

# Fields of the captured logical ports the emulator leaves out, and why.
# (None so far: every field the real capture fills is filled.)
SRIOV_NOT_MODELLED: dict[str, str] = {}


def _pport(host, aid, pid):
    for adap in host.refresh().asio_config.sriov_adapters:
        if adap.sriov_adap_id == aid:
            return next(p for p in adap.phys_ports if p.port_id == pid)
    raise AssertionError(f"no SR-IOV port {aid}/{pid}")


def _vios(adapter, name="vios1"):
    return next(v for v in pvm_vios.VIOS.get(adapter, xag=[]) if v.name == name)


def _refused(call, status, code):
    with pytest.raises(pvm_exc.HttpError) as exc:
        call()
    return refusal(exc, status, code)


def _compare(real, emulated, allowed):
    """Paths the real object fills that the emulated one does not (or with another type)."""
    return missing_fields(_filled(real), _filled(emulated), allowed)


# ---- create / list / delete -------------------------------------------------------------
def test_logical_port_lifecycle_on_an_lpar(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    before = _pport(host, 1, 0)
    assert (before.cfg_lps, before.allocated_capacity) == (0, 0.0)
    lp = pvm_card.SRIOVEthLPort.bld(
        adapter, 1, 0, pvid=100, allowed_vlans=[200, 300], cfg_capacity=0.1, max_capacity=0.5
    ).create(parent=lpar)
    # Server-assigned fields, in the shape of the real capture.
    assert lp.lport_id == 0x27004001
    assert lp.sriov_adap_id == 1 and lp.pport_id == 0
    assert lp.loc_code == before.loc_code + "-S1"
    assert lp.dev_name == "PHB 4097"
    assert re.fullmatch("[0-9A-F]{12}", lp.mac) and lp.cur_mac == "000000000000"
    assert lp.vnic_port_usage == pvm_card.VNICPortUsage.NOT_VNIC
    assert (lp.pvid, lp.allowed_vlans, lp.allowed_macs) == (100, [200, 300], "ALL")
    assert (lp.cfg_capacity, lp.cfg_max_capacity, lp.is_promisc) == (0.1, 0.5, False)
    assert lp.href.split("/rest/api/uom/")[1].startswith(
        f"LogicalPartition/{lpar.uuid}/SRIOVEthernetLogicalPort/"
    )
    listed = pvm_card.SRIOVEthLPort.get(adapter, parent=lpar)
    assert [w.uuid for w in listed] == [lp.uuid]
    after = _pport(host, 1, 0)
    assert (after.cfg_lps, after.allocated_capacity) == (1, 0.1)

    lp.delete()
    assert pvm_card.SRIOVEthLPort.get(adapter, parent=lpar) == []
    gone = _pport(host, 1, 0)
    assert (gone.cfg_lps, gone.allocated_capacity) == (0, 0.0)


def test_defaults_ids_and_mac(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    one = pvm_card.SRIOVEthLPort.bld(adapter, 2, 1).create(parent=lpar)
    two = pvm_card.SRIOVEthLPort.bld(adapter, 2, 1, mac="fa:16:3e:00:00:01").create(parent=lpar)
    # No capacity asked: the port's minimum granularity; max 100 %; untagged.
    assert one.cfg_capacity == _pport(host, 2, 1).min_granularity == 0.02
    assert (one.cfg_max_capacity, one.pvid) == (1.0, 0)
    # IDs are per adapter, the MAC as given, normalised.
    assert (one.lport_id, two.lport_id) == (0x27004001, 0x27004002)
    assert two.mac == "FA163E000001" and one.mac != two.mac
    assert _pport(host, 2, 1).cfg_lps == 2
    # The MAC is now taken for every adapter type.
    msg = _refused(
        lambda: pvm_card.SRIOVEthLPort.bld(adapter, 1, 0, mac="FA163E000001").create(parent=lpar),
        400,
        "EMUL0004",
    )
    assert "FA163E000001" in msg and "already in use" in msg


def test_logical_port_on_a_vios_is_listed_where_the_capture_was_taken(adapter, host):
    vios1 = _vios(adapter)
    lp = pvm_card.SRIOVEthLPort.bld(adapter, 1, 2, is_promisc=True).create(parent=vios1)
    assert lp.is_promisc
    resp = adapter.read(pvm_vios.VIOS.schema_type, vios1.uuid, pvm_card.SRIOVEthLPort.schema_type)
    assert [w.uuid for w in pvm_card.SRIOVEthLPort.wrap(resp)] == [lp.uuid]
    assert pvm_card.SRIOVEthLPort.get(adapter, parent=_vios(adapter, "vios2")) == []
    # One promiscuous logical port per physical port (MaximumPromiscuousLogicalPorts).
    msg = _refused(
        lambda: pvm_card.SRIOVEthLPort.bld(adapter, 1, 2, is_promisc=True).create(parent=vios1),
        500,
        "EMUL0008",
    )
    assert "promiscuous" in msg


def test_update_changes_vlans_and_keeps_the_mac(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    lp = pvm_card.SRIOVEthLPort.bld(adapter, 1, 0, pvid=10).create(parent=lpar)
    lp.pvid = 20
    lp.allowed_vlans = [30]
    new = lp.update()
    assert (new.pvid, new.allowed_vlans, new.mac) == (20, [30], lp.mac)
    assert pvm_card.SRIOVEthLPort.get(adapter, parent=lpar)[0].pvid == 20


def test_deleting_the_lpar_releases_its_logical_ports(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    pvm_card.SRIOVEthLPort.bld(adapter, 1, 1, cfg_capacity=0.3).create(parent=lpar)
    pvm_card.SRIOVEthLPort.bld(adapter, 1, 1, cfg_capacity=0.2).create(parent=lpar)
    port = _pport(host, 1, 1)
    assert (port.cfg_lps, port.allocated_capacity) == (2, 0.5)
    lpar.refresh().delete()
    port = _pport(host, 1, 1)
    assert (port.cfg_lps, port.allocated_capacity) == (0, 0.0)


# ---- refusals ---------------------------------------------------------------------------
def test_capacity_cannot_pass_100_percent(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    pvm_card.SRIOVEthLPort.bld(adapter, 1, 0, cfg_capacity=0.6).create(parent=lpar)
    msg = _refused(
        lambda: pvm_card.SRIOVEthLPort.bld(adapter, 1, 0, cfg_capacity=0.6).create(parent=lpar),
        500,
        "EMUL0013",
    )
    assert "40.0% capacity left" in msg
    assert _pport(host, 1, 0).allocated_capacity == 0.6
    # What is left can still be used, exactly.
    pvm_card.SRIOVEthLPort.bld(adapter, 1, 0, cfg_capacity=0.4).create(parent=lpar)
    assert _pport(host, 1, 0).allocated_capacity == 1.0


def test_capacity_must_be_a_multiple_of_the_granularity(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    msg = _refused(
        lambda: pvm_card.SRIOVEthLPort.bld(adapter, 1, 0, cfg_capacity=0.03).create(parent=lpar),
        400,
        "EMUL0009",
    )
    assert "multiple of the minimum granularity 2.0%" in msg
    assert _pport(host, 1, 0).cfg_lps == 0


def test_a_full_physical_port_is_refused(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    limit = _pport(host, 1, 2).cfg_max_lps
    assert limit == 4  # sys_with_sriov.txt: ConfiguredMaxEthernetLogicalPorts of port 1/2
    for _ in range(limit):
        pvm_card.SRIOVEthLPort.bld(adapter, 1, 2).create(parent=lpar)
    msg = _refused(
        lambda: pvm_card.SRIOVEthLPort.bld(adapter, 1, 2).create(parent=lpar), 500, "EMUL0008"
    )
    assert "no free logical port (4 of 4 configured)" in msg
    assert _pport(host, 1, 2).cfg_lps == 4
    # A vNIC backing device needs a logical port on the port too.
    back = pvm_card.VNICBackDev.bld(adapter, _vios(adapter).uuid, 1, 2)
    msg = _refused(
        lambda: pvm_card.VNIC.bld(adapter, back_devs=[back]).create(parent=lpar), 500, "EMUL0008"
    )
    assert "no free logical port" in msg
    assert pvm_card.VNIC.get(adapter, parent=lpar) == []


@pytest.mark.parametrize(
    "aid, pid, words",
    [
        (9, 0, "no SR-IOV adapter with SRIOVAdapterID 9"),
        (1, 7, "SR-IOV adapter 1 has no physical port 7"),
    ],
)
def test_missing_adapter_or_port_is_refused(adapter, host, aid, pid, words):
    lpar = build(adapter, host).create(parent=host)
    msg = _refused(
        lambda: pvm_card.SRIOVEthLPort.bld(adapter, aid, pid).create(parent=lpar), 400, "EMUL0009"
    )
    assert words in msg


def test_pvid_and_vlans_outside_the_port_range_are_refused(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    msg = _refused(
        lambda: pvm_card.SRIOVEthLPort.bld(adapter, 1, 0, pvid=4095).create(parent=lpar),
        400,
        "EMUL0009",
    )
    assert "PortVLANID 4095 is outside 2..4094" in msg
    msg = _refused(
        lambda: pvm_card.SRIOVEthLPort.bld(adapter, 1, 0, allowed_vlans=[5000]).create(parent=lpar),
        400,
        "EMUL0009",
    )
    assert "[5000]" in msg
    assert _pport(host, 1, 0).cfg_lps == 0


def test_adding_to_a_running_lpar_needs_rmc(emulator, adapter, host):
    emulator.emu.config.rmc_on_boot = False
    lpar = build(adapter, host).create(parent=host)
    pvm_power.power_on(lpar, host.uuid)
    msg = _refused(
        lambda: pvm_card.SRIOVEthLPort.bld(adapter, 1, 0).create(parent=lpar), 500, "EMUL0010"
    )
    assert "RMC" in msg


def test_adapter_not_in_sriov_mode_is_refused(tmp_path):
    raw = inventory.load("small")
    raw["host"]["sriov_adapters"] = {"2": {"mode": "Dedicated"}}
    srv = app.start(raw, token_dir=str(tmp_path))
    try:
        logging.getLogger("pypowervm.adapter").setLevel(logging.ERROR)
        sess = pvm_adpt.Session(
            "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
        )
        adapter = pvm_adpt.Adapter(sess)
        host = pvm_ms.System.get(adapter)[0]
        modes = {a.sriov_adap_id: a.mode for a in host.asio_config.sriov_adapters}
        assert modes[2] == pvm_card.SRIOVAdapterMode.DEDICATED
        lpar = build(adapter, host).create(parent=host)
        msg = _refused(
            lambda: pvm_card.SRIOVEthLPort.bld(adapter, 2, 0).create(parent=lpar), 500, "EMUL0040"
        )
        assert "mode 'Dedicated'" in msg
        back = pvm_card.VNICBackDev.bld(adapter, _vios(adapter).uuid, 2, 0)
        msg = _refused(
            lambda: pvm_card.VNIC.bld(adapter, back_devs=[back]).create(parent=lpar),
            500,
            "EMUL0040",
        )
        # Adapter 1 is untouched.
        pvm_card.SRIOVEthLPort.bld(adapter, 1, 0).create(parent=lpar)
        sess._logoff()
    finally:
        srv.stop()


def test_unknown_adapter_in_the_inventory_is_refused():
    raw = inventory.load("small")
    raw["host"]["sriov_adapters"] = {"7": {"mode": "Dedicated"}}
    with pytest.raises(ValueError) as exc:
        app.start(raw)
    assert "host.sriov_adapters names SR-IOV adapter 7" in str(exc.value)


# ---- vNIC backing devices ---------------------------------------------------------------
def test_vnic_backing_device_links_its_vios_logical_port(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    vios1, vios2 = _vios(adapter), _vios(adapter, "vios2")
    backs = [
        pvm_card.VNICBackDev.bld(adapter, vios1.uuid, 1, 0, capacity=0.04),
        pvm_card.VNICBackDev.bld(adapter, vios2.uuid, 2, 0),
    ]
    vnic = pvm_card.VNIC.bld(adapter, pvid=5, back_devs=backs).create(parent=lpar)
    assert vnic.capacity == 0.04  # the active (first) backing device's
    fresh = pvm_card.VNIC.get(adapter, parent=lpar)[0]
    hrefs = [b.lport_href for b in fresh.back_devs]
    assert all(hrefs) and hrefs == [b.lport_href for b in vnic.back_devs]
    # Each link resolves to a logical port of the VIOS hosting that device.
    for back, href, vios in zip(fresh.back_devs, hrefs, (vios1, vios2), strict=True):
        assert f"/VirtualIOServer/{vios.uuid}/SRIOVEthernetLogicalPort/" in href
        lp = pvm_card.SRIOVEthLPort.wrap(adapter.read_by_href(href))
        assert lp.vnic_port_usage == pvm_card.VNICPortUsage.DEDICATED_VNIC
        assert (lp.sriov_adap_id, lp.pport_id) == (back.sriov_adap_id, back.pport_id)
        assert lp.cfg_capacity == back.capacity and lp.mac == vnic.mac == lp.cur_mac
        assert lp.pvid == 5 and lp.dev_name == "unavailable"
        assert [w.uuid for w in pvm_card.SRIOVEthLPort.get(adapter, parent=vios)] == [lp.uuid]
    assert (_pport(host, 1, 0).cfg_lps, _pport(host, 1, 0).allocated_capacity) == (1, 0.04)
    assert (_pport(host, 2, 0).cfg_lps, _pport(host, 2, 0).allocated_capacity) == (1, 0.02)
    # The port belongs to the vNIC: it cannot be removed on its own.
    backing = pvm_card.SRIOVEthLPort.wrap(adapter.read_by_href(hrefs[0]))
    msg = _refused(backing.delete, 500, "EMUL0008")
    assert "backs a vNIC" in msg

    vnic.delete()
    for href in hrefs:
        with pytest.raises(pvm_exc.HttpError) as exc:
            adapter.read_by_href(href)
        assert exc.value.response.status == 404
    assert (_pport(host, 1, 0).cfg_lps, _pport(host, 1, 0).allocated_capacity) == (0, 0.0)
    assert _pport(host, 2, 0).cfg_lps == 0


def test_deleting_an_lpar_removes_its_vnic_ports_from_the_vios(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    vios1 = _vios(adapter)
    back = pvm_card.VNICBackDev.bld(adapter, vios1.uuid, 1, 1)
    pvm_card.VNIC.bld(adapter, back_devs=[back]).create(parent=lpar)
    assert len(pvm_card.SRIOVEthLPort.get(adapter, parent=vios1)) == 1
    lpar.refresh().delete()
    assert pvm_card.SRIOVEthLPort.get(adapter, parent=vios1) == []
    assert _pport(host, 1, 1).cfg_lps == 0


# ---- fidelity against the real captures -------------------------------------------------
def test_logical_ports_fill_the_fields_of_sriov_lp_feed(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    vios1 = _vios(adapter)
    direct = pvm_card.SRIOVEthLPort.bld(adapter, 1, 0, pvid=42).create(parent=lpar)
    back = pvm_card.VNICBackDev.bld(adapter, vios1.uuid, 2, 0)
    vnic = pvm_card.VNIC.bld(adapter, back_devs=[back]).create(parent=lpar)
    for_vnic = pvm_card.SRIOVEthLPort.wrap(adapter.read_by_href(vnic.back_devs[0].lport_href))
    real = _captured(pvm_card.SRIOVEthLPort, "sriov_lp_feed.txt")
    for emulated in (direct.refresh(), for_vnic):
        missing = _compare(real, emulated, SRIOV_NOT_MODELLED)
        assert not missing, f"SRIOVEthLPort from sriov_lp_feed.txt: {'; '.join(missing)}"


def test_vnic_fills_lport_href_like_vnic_feed(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    back = pvm_card.VNICBackDev.bld(adapter, _vios(adapter).uuid, 1, 0)
    pvm_card.VNIC.bld(adapter, pvid=5, back_devs=[back]).create(parent=lpar)
    vnic = pvm_card.VNIC.get(adapter, parent=lpar)[0]
    every = {**NOT_MODELLED.get("VNIC", {}), **NOT_MODELLED.get("vnic_feed.txt", {})}
    allowed = {k: v for k, v in every.items() if k != "back_devs.lport_href"}
    real = _captured(pvm_card.VNIC, "vnic_feed.txt")
    assert "back_devs.lport_href" in _filled(real)
    assert "back_devs.lport_href" in _filled(vnic)
    missing = _compare(real, vnic, allowed)
    assert not missing, f"VNIC from vnic_feed.txt: {'; '.join(missing)}"


def test_a_vnic_holds_its_client_slot_against_network_adapters(adapter, host):
    """One slot space per partition: a CNA created after a vNIC takes the
    next free slot, and asking for the vNIC's slot is refused."""
    lpar = build(adapter, host).create(parent=host)
    back = pvm_card.VNICBackDev.bld(adapter, _vios(adapter).uuid, 1, 0)
    vnic = pvm_card.VNIC.bld(adapter, slot_num=2, back_devs=[back]).create(parent=lpar)
    assert vnic.slot == 2
    (switch,) = [s for s in pvm_net.VSwitch.get(adapter, parent=host) if s.name == "ETHERNET0"]
    cna = pvm_net.CNA.bld(adapter, 100, switch.related_href).create(parent=lpar)
    assert cna.slot == 3
    msg = _refused(
        lambda: pvm_net.CNA.bld(adapter, 100, switch.related_href, slot_num=2).create(parent=lpar),
        400,
        errors.BAD_VALUE,
    )
    assert "virtual slot 2 is already in use" in msg
