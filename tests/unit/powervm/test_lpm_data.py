"""The PowerVM live-migrate-data object as nova-conductor sees it: registered
by ibmvirt-nova-conductor's import alone (no pypowervm), and surviving the
RPC serialisation between destination, conductor and source."""

from __future__ import annotations

import subprocess
import sys

_ROUND_TRIP = """
import sys
from nova import objects
objects.register_all()
from nova.objects import base
from nova.objects import migrate_data as md
try:
    base.NovaObjectSerializer().deserialize_entity(None, {
        "nova_object.name": "PowerVMLiveMigrateData", "nova_object.namespace": "nova",
        "nova_object.version": "1.0", "nova_object.data": {}})
    print("known before the import")
except Exception as exc:
    print("unknown before:", type(exc).__name__)
import ibmvirt.cmd.nova_conductor as c
c_main = c.main  # the console script's entry point exists
import ibmvirt.powervm.lpm_data as lpm
data = lpm.PowerVMLiveMigrateData(
    dest_sys_name="pvm-host2", dest_ip="192.0.2.7", dest_proc_compat="default,POWER7",
    dest_memory_region_mb=256, dest_storage=None, vol_data={"v1": "vios1:hdisk4"},
    vlan_mappings={"FA163E000001": "5"}, wait_for_vif_plugged=False)
ser = base.NovaObjectSerializer()
back = ser.deserialize_entity(None, ser.serialize_entity(None, data))
assert isinstance(back, md.LiveMigrateData), type(back)
print(back.dest_sys_name, back.vlan_mapping_list(), back.vol_data, back.dest_storage)
print("pypowervm loaded:", "pypowervm" in sys.modules)
"""


def test_the_conductor_entry_point_registers_the_object_without_pypowervm():
    out = subprocess.run(
        [sys.executable, "-c", _ROUND_TRIP], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "unknown before: UnsupportedObjectError"
    assert lines[1] == "pvm-host2 ['FA163E000001/5'] {'v1': 'vios1:hdisk4'} None"
    assert lines[2] == "pypowervm loaded: False"
