"""The slot map of an LPAR with a CNA and an SR-IOV vNIC, read from the
NovaLink emulator over HTTP: both adapters by MAC, and a pvm_sriov port
plugged again (an evacuate) in the slot its vNIC had."""

from __future__ import annotations

import gc
import logging

import pypowervm.adapter as pvm_adpt
from nova.network import model
from pypowervm.utils import lpar_builder as lb
from pypowervm.wrappers import iocard as pvm_card
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import network as pvm_net

from ibmvirt import contract
from ibmvirt.conf import CONF
from ibmvirt.emulators.novalink import app
from ibmvirt.powervm import slots, vif

#: small.yaml labels SR-IOV port 1/0 (link up) with it.
PHYSNET = "physnet-prod"
MAC = "fa:16:3e:5a:00:10"


def _sriov_vif() -> model.VIF:
    network = model.Network(id="net", bridge=None, meta={"physical_network": PHYSNET})
    return model.VIF(
        id="port-sriov",
        address=MAC,
        network=network,
        type=contract.VIF_TYPE_PVM_SRIOV,
        details=contract.pvm_sriov_vif_details(PHYSNET, [], 3001, 1, None, None),
    )


def test_a_vnic_is_in_the_slot_map_and_plugged_back_in_its_slot(tmp_path):
    srv = app.start("small", token_dir=str(tmp_path))
    logging.getLogger("pypowervm.adapter").setLevel(logging.ERROR)
    sess = pvm_adpt.Session(
        "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
    )
    try:
        adapter = pvm_adpt.Adapter(sess)
        system = pvm_ms.System.get(adapter)[0]
        attrs = {lb.NAME: "vm1", lb.MEM: 1024, lb.VCPU: 1}
        stdz = lb.DefaultStandardize(system)
        lpar = lb.LPARBuilder(adapter, attrs, stdz).build().create(parent=system)
        (switch,) = [
            s for s in pvm_net.VSwitch.get(adapter, parent=system) if s.name == "ETHERNET0"
        ]
        cna = pvm_net.CNA.bld(adapter, 100, switch.related_href).create(parent=lpar)
        driver = vif.SRIOVVifDriver(adapter, system.uuid, CONF)
        driver.plug(lpar, _sriov_vif(), "instance-1", slot=9)

        found = slots.read(adapter, lpar)
        assert found.cna == {cna.mac: cna.slot, contract.pvm_mac(MAC): 9}
        assert found.cna_slot(MAC) == 9

        # Recreated elsewhere (here: unplugged, then plugged with the kept map).
        kept = slots.SlotMap.from_json(found.to_json())
        assert driver.unplug(lpar, _sriov_vif())
        driver.plug(lpar, _sriov_vif(), "instance-1", slot=kept.cna_slot(MAC))
        (vnic,) = pvm_card.VNIC.get(adapter, parent=lpar)
        assert (vnic.mac, vnic.slot) == (contract.pvm_mac(MAC), 9)
    finally:
        sess._logoff()
        gc.collect()
        srv.stop()
