"""Inventories: the shipped ones, scale, and refusal of inconsistent files."""

from __future__ import annotations

import gc

import pypowervm.adapter as pvm_adpt
import pytest
from pypowervm.wrappers import iocard as pvm_card
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import virtual_io_server as pvm_vios

from ibmvirt.emulators.novalink import app, inventory

from .test_lpar import build


def test_large_inventory_serves_500_lpars(tmp_path):
    srv = app.start("large", token_dir=str(tmp_path))
    try:
        sess = pvm_adpt.Session(
            "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
        )
        adapter = pvm_adpt.Adapter(sess)
        lpars = pvm_lpar.LPAR.get(adapter)
        assert len(lpars) == 501  # NovaLink + 500 generated
        hit = pvm_lpar.LPAR.search(adapter, name="scale-lpar-0499")
        assert len(hit) == 1 and hit[0].state == "not activated"
        ids = {lp.id for lp in lpars} | {v.id for v in pvm_vios.VIOS.get(adapter)}
        assert len(ids) == 503  # unique partition IDs
        host = pvm_ms.System.get(adapter)[0]
        assert host.memory_total == 1048576
        sess._logoff()
    finally:
        gc.collect()
        srv.stop()


def test_two_hosts_get_distinct_identities(tmp_path):
    a = inventory.load("small")
    b = inventory.load("small")
    b["host"] = dict(b["host"], name="pvm-host-2")
    srvs = [
        app.start(a, token_dir=str(tmp_path / "a")),
        app.start(b, token_dir=str(tmp_path / "b")),
    ]
    try:
        wwpns, uuids = [], []
        for srv in srvs:
            for v in srv.emu.store.list("VirtualIOServer"):
                uuids.append(v.uuid)
                wwpns += [
                    p.findtext(
                        "{http://www.ibm.com/xmlns/systems/power/firmware/uom/mc/2012_10/}WWPN"
                    )
                    for p in v.elem.iter(
                        "{http://www.ibm.com/xmlns/systems/power/"
                        "firmware/uom/mc/2012_10/}"
                        "PhysicalFibreChannelPort"
                    )
                ]
        assert len(set(uuids)) == 4
        assert len(wwpns) > 4 and len(set(wwpns)) == len(wwpns)
    finally:
        for srv in srvs:
            srv.stop()


def test_fc_port_wwpns_from_inventory(tmp_path):
    inv = inventory.load("small")
    inv["vioses"][0]["fc_ports"] = [{"name": "fcs0", "wwpn": "21:00:00:24:ff:00:00:01"}]
    srv = app.start(inv, token_dir=str(tmp_path))
    try:
        v = next(
            o for o in srv.emu.store.list("VirtualIOServer") if o.field("PartitionName") == "vios1"
        )
        port = next(
            v.elem.iter(
                "{http://www.ibm.com/xmlns/systems/power/firmware/uom/mc/"
                "2012_10/}PhysicalFibreChannelPort"
            )
        )
        assert (
            port.findtext("{http://www.ibm.com/xmlns/systems/power/firmware/uom/mc/2012_10/}WWPN")
            == "21000024FF000001"
        )
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda inv: inv["lpars"].append({"name": "vios1"}), "unique"),
        (
            lambda inv: inv["vioses"][0]["volume_groups"][0].update(physical_volumes=["nope"]),
            "unknown physical volume",
        ),
        (lambda inv: inv["network"]["sea"].update(vios="vios9"), "vios9"),
    ],
)
def test_inconsistent_inventory_is_refused(change, words):
    raw = inventory.load("small")
    raw["lpars"] = []
    change(raw)
    with pytest.raises(ValueError) as exc:
        app.start(raw)
    assert words in str(exc.value)


def test_deleting_an_lpar_releases_its_vnic_ports(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    vios1 = next(v for v in pvm_vios.VIOS.get(adapter) if v.name == "vios1")
    adapters = host.asio_config.sriov_adapters
    before = adapters[0].phys_ports[0].cfg_lps
    back = pvm_card.VNICBackDev.bld(
        adapter, vios1.uuid, adapters[0].sriov_adap_id, adapters[0].phys_ports[0].port_id
    )
    pvm_card.VNIC.bld(adapter, pvid=7, back_devs=[back]).create(parent=lpar)
    assert host.refresh().asio_config.sriov_adapters[0].phys_ports[0].cfg_lps == before + 1
    lpar.refresh().delete()
    assert host.refresh().asio_config.sriov_adapters[0].phys_ports[0].cfg_lps == before


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"host": {"memory_mb": "lots"}}, "host.memory_mb must be a number"),
        ({"host": {"proc_units": 0}}, "host.proc_units must be greater than 0"),
        ({"vioses": [{"memory_mb": 1024}]}, "vioses[0] needs a 'name'"),
    ],
)
def test_inventory_values_are_checked(bad, words):
    with pytest.raises(inventory.InventoryError) as exc:
        inventory.load(bad)
    assert words in str(exc.value)


def test_normalising_twice_is_harmless():
    once = inventory.load("large")
    twice = inventory.load(once)
    assert len(twice["lpars"]) == 500
