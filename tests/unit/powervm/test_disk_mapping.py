"""A boot disk mapped through several VIOSes at once (one FeedTask, the VIOSes
updated in parallel) reaches every VIOS with its storage element."""

from __future__ import annotations

import gc
import logging
import types

import pypowervm.adapter as pvm_adpt
from pypowervm import const as pvm_const
from pypowervm.tasks import storage as pvm_stg
from pypowervm.utils import lpar_builder as lb
from pypowervm.wrappers import managed_system as pvm_ms
from pypowervm.wrappers import storage as pvm_stor
from pypowervm.wrappers import virtual_io_server as pvm_vios

from ibmvirt.emulators.novalink import app
from ibmvirt.powervm.disk import ssp


class _Recorder:
    def __init__(self):
        self.functors = []

    def add_functor_subtask(self, fn, *args, **kwargs):
        self.functors.append(fn)


def test_each_vios_mapping_gets_its_own_copy_of_the_disk(tmp_path):
    srv = app.start("small", token_dir=str(tmp_path))
    logging.getLogger("pypowervm.adapter").setLevel(logging.ERROR)
    sess = pvm_adpt.Session(
        "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
    )
    try:
        adapter = pvm_adpt.Adapter(sess)
        system = pvm_ms.System.get(adapter)[0]
        stdz = lb.DefaultStandardize(system)
        attrs = {lb.NAME: "vm1", lb.MEM: 1024, lb.VCPU: 1}
        lpar = lb.LPARBuilder(adapter, attrs, stdz).build().create(parent=system)
        tier = pvm_stg.default_tier_for_ssp(pvm_stor.SSP.get(adapter)[0])
        _, lu = pvm_stg.crt_lu(tier, "boot_x", 1)
        vioses = pvm_vios.VIOS.get(adapter, xag=[pvm_const.XAG.VIO_SMAP])
        disk = ssp.SSPDisk(types.SimpleNamespace(uuid=system.uuid), None)
        disk._vios_uuids = [v.uuid for v in vioses]
        ftsk = types.SimpleNamespace(wrapper_tasks={v.uuid: _Recorder() for v in vioses})

        disk.add_connect(ftsk, lpar.uuid, lu)
        # Every VIOS's functor runs before any update is sent, as in a parallel FeedTask.
        for vios_w in vioses:
            for fn in ftsk.wrapper_tasks[vios_w.uuid].functors:
                assert fn(vios_w)
        for vios_w in vioses:
            stored = [m.backing_storage for m in vios_w.scsi_mappings]
            assert [s.name for s in stored if s is not None] == ["boot_x"], vios_w.name
    finally:
        sess._logoff()
        gc.collect()
        srv.stop()
