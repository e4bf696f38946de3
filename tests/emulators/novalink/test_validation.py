"""Validation like the real server: schema order, read-only and create-only
fields, unique names, capacity, deletes refused while in use."""

from __future__ import annotations

import re

import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.wrappers import logical_partition as pvm_lpar

from .test_lpar import build, refusal


def _put_raw(adapter, path, xml):
    return adapter.session.request(
        "PUT",
        path,
        headers={
            "Content-Type": "application/vnd.ibm.powervm.uom+xml; type=LogicalPartition",
            "Accept": "application/atom+xml; charset=UTF-8",
        },
        body=xml,
    )


def test_out_of_order_elements_are_refused(adapter, host):
    xml = build(adapter, host).toxmlstring().decode()
    name = re.search(r"<uom:PartitionName>.*?</uom:PartitionName>", xml).group(0)
    swapped = xml.replace(name, "").replace(
        "<uom:AvailabilityPriority>", name + "<uom:AvailabilityPriority>", 1
    )
    path = f"/rest/api/uom/ManagedSystem/{host.uuid}/LogicalPartition"
    with pytest.raises(pvm_exc.HttpError) as exc:
        _put_raw(adapter, path, swapped)
    assert exc.value.response.status == 400
    msg = exc.value.her_wrap.message
    assert "REST0001" in msg and "PartitionName" in msg and "AvailabilityPriority" in msg
    assert pvm_lpar.LPAR.search(adapter, name="vm1") == []
    # The same payload in schema order is accepted.
    _put_raw(adapter, path, xml)
    assert len(pvm_lpar.LPAR.search(adapter, name="vm1")) == 1


def test_read_only_field_refused_on_create(adapter, host):
    pending = build(adapter, host)
    pending.set_parm_value("IsManagementPartition", "true")
    with pytest.raises(pvm_exc.HttpError) as exc:
        pending.create(parent=host)
    assert "EMUL0002" in exc.value.her_wrap.message
    assert "IsManagementPartition" in exc.value.her_wrap.message


def test_read_only_field_change_refused_on_update(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    lpar.set_parm_value("PartitionState", "running")
    with pytest.raises(pvm_exc.HttpError) as exc:
        lpar.update()
    assert "PartitionState is read-only" in exc.value.her_wrap.message
    assert pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid).state == "not activated"


def test_create_only_field_change_refused(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    lpar.set_parm_value("PartitionType", "OS400")
    with pytest.raises(pvm_exc.HttpError) as exc:
        lpar.update()
    assert "EMUL0003" in exc.value.her_wrap.message


def test_memory_not_multiple_of_region_refused(adapter, host):
    pending = build(adapter, host, validate=False)
    pending.mem_config.desired = 1000
    pending.mem_config.min = 1000
    with pytest.raises(pvm_exc.HttpError) as exc:
        pending.create(parent=host)
    assert "multiple of the memory region size (256 MB)" in exc.value.her_wrap.message


def test_more_memory_than_the_system_refused(adapter, host):
    pending = build(adapter, host, validate=False)
    pending.mem_config.max = 1048576
    with pytest.raises(pvm_exc.HttpError) as exc:
        pending.create(parent=host)
    refusal(exc, 500, "EMUL0005", "configurable memory")


def test_processing_units_per_virtual_processor(adapter, host):
    pending = build(adapter, host, units=0.5, vcpu=2, validate=False)
    pending.proc_config.shared_proc_cfg.desired_virtual = 20
    pending.proc_config.shared_proc_cfg.max_virtual = 20
    with pytest.raises(pvm_exc.HttpError) as exc:
        pending.create(parent=host)
    assert "per virtual processor" in exc.value.her_wrap.message


def test_rename_to_existing_name_refused(adapter, host):
    build(adapter, host, name="a").create(parent=host)
    b = build(adapter, host, name="b").create(parent=host)
    b.name = "a"
    with pytest.raises(pvm_exc.HttpError) as exc:
        b.update()
    refusal(exc, 500, "HSCL05DE", "already uses the name a")


def test_management_partition_cannot_be_deleted(adapter):
    from pypowervm.tasks import partition

    mgmt = partition.get_mgmt_partition(adapter)
    with pytest.raises(pvm_exc.HttpError) as exc:
        mgmt.delete()
    refusal(exc, 500, "EMUL0007", "power it off")  # it always runs
    assert partition.get_mgmt_partition(adapter).uuid == mgmt.uuid


def test_vios_cannot_be_deleted(adapter):
    from pypowervm.wrappers import virtual_io_server as pvm_vios

    vios = pvm_vios.VIOS.get(adapter)[0]
    with pytest.raises(pvm_exc.HttpError) as exc:
        vios.delete()
    assert exc.value.response.status in (400, 405)
    assert len(pvm_vios.VIOS.get(adapter)) == 2


def test_client_chosen_partition_id_is_kept_or_refused(adapter, host):
    pending = build(adapter, host, name="a")
    pending._id(42)
    lpar = pending.create(parent=host)
    assert lpar.id == 42
    again = build(adapter, host, name="b")
    again._id(42)
    with pytest.raises(pvm_exc.HttpError) as exc:
        again.create(parent=host)
    assert "PartitionID 42 is already used" in exc.value.her_wrap.message


def test_nested_read_only_field_refused_on_create(adapter, host):
    pending = build(adapter, host)
    pending.mem_config.set_parm_value("CurrentMemory", "4096")
    with pytest.raises(pvm_exc.HttpError) as exc:
        pending.create(parent=host)
    assert "PartitionMemoryConfiguration.CurrentMemory is read-only" in exc.value.her_wrap.message
    assert pvm_lpar.LPAR.search(adapter, name="vm1") == []


def test_virtual_processor_limit_and_compat_mode(adapter, host):
    pending = build(adapter, host, units=4.0, vcpu=64, validate=False)
    pending.proc_config.shared_proc_cfg.max_virtual = 65
    with pytest.raises(pvm_exc.HttpError) as exc:
        pending.create(parent=host)
    assert "at most 64 virtual processors" in exc.value.her_wrap.message
    pending = build(adapter, host, validate=False)
    pending.set_parm_value("PendingProcessorCompatibilityMode", "POWER11")
    with pytest.raises(pvm_exc.HttpError) as exc:
        pending.create(parent=host)
    assert "compatibility mode 'POWER11'" in exc.value.her_wrap.message


def _lpar_path(host):
    return f"/rest/api/uom/ManagedSystem/{host.uuid}/LogicalPartition"


def test_unknown_element_is_refused(adapter, host):
    xml = build(adapter, host).toxmlstring().decode()
    bogus = xml.replace(
        "<uom:PartitionName>", "<uom:BogusElement>1</uom:BogusElement><uom:PartitionName>", 1
    )
    with pytest.raises(pvm_exc.HttpError) as exc:
        _put_raw(adapter, _lpar_path(host), bogus)
    assert exc.value.response.status == 400
    msg = exc.value.her_wrap.message
    assert "Failed to unmarshal input payload" in msg and "REST0001" in msg
    assert "BogusElement is not an element of LogicalPartition" in msg
    assert pvm_lpar.LPAR.search(adapter, name="vm1") == []


def test_nested_unknown_element_is_refused_on_update(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    lpar.mem_config.set_parm_value("BogusMemoryKnob", "1")
    with pytest.raises(pvm_exc.HttpError) as exc:
        lpar.update()
    assert "BogusMemoryKnob is not an element of PartitionMemoryConfiguration" in (
        exc.value.her_wrap.message
    )


def test_repeated_single_element_is_refused(adapter, host):
    xml = build(adapter, host).toxmlstring().decode()
    name = re.search(r"<uom:PartitionName>.*?</uom:PartitionName>", xml).group(0)
    twice = xml.replace(name, name + name.replace("vm1", "vm2"), 1)
    with pytest.raises(pvm_exc.HttpError) as exc:
        _put_raw(adapter, _lpar_path(host), twice)
    assert exc.value.response.status == 400
    assert "PartitionName appears more than once" in exc.value.her_wrap.message
    assert pvm_lpar.LPAR.search(adapter, name="vm1") == []


def test_unparseable_payload_uses_the_real_message(adapter, host):
    with pytest.raises(pvm_exc.HttpError) as exc:
        _put_raw(adapter, _lpar_path(host), "<uom:LogicalPartition")
    assert exc.value.response.status == 400
    assert "Failed to unmarshal input payload" in exc.value.her_wrap.message


def test_non_numeric_memory_is_a_client_error(adapter, host):
    pending = build(adapter, host, validate=False)
    pending.mem_config.set_parm_value("DesiredMemory", "lots")
    with pytest.raises(pvm_exc.HttpError) as exc:
        pending.create(parent=host)
    assert exc.value.response.status == 400
    assert "DesiredMemory must be a number, not 'lots'" in exc.value.her_wrap.message
    lpar = build(adapter, host).create(parent=host)
    lpar.proc_config.shared_proc_cfg.set_parm_value("DesiredProcessingUnits", "many")
    with pytest.raises(pvm_exc.HttpError) as exc:
        lpar.update()
    assert exc.value.response.status == 400
    assert "DesiredProcessingUnits must be a number" in exc.value.her_wrap.message


def test_partition_uuid_must_be_a_uuid(adapter, host):
    pending = build(adapter, host)
    pending.set_parm_value("PartitionUUID", "not-a-uuid")
    with pytest.raises(pvm_exc.HttpError) as exc:
        pending.create(parent=host)
    assert exc.value.response.status == 400
    assert "'NOT-A-UUID' is not a UUID" in exc.value.her_wrap.message
    assert pvm_lpar.LPAR.search(adapter, name="vm1") == []


def test_partition_uuid_cannot_change_on_update(adapter, host):
    lpar = build(adapter, host).create(parent=host)
    for val in ("not-a-uuid", "12345678-1234-1234-1234-123456789ABC"):
        lpar.set_parm_value("PartitionUUID", val)
        with pytest.raises(pvm_exc.HttpError) as exc:
            lpar.update()
        assert exc.value.response.status == 400
        assert "EMUL0003" in exc.value.her_wrap.message
        lpar = pvm_lpar.LPAR.get(adapter, uuid=lpar.uuid)  # fresh, not a 304 of ours
        assert lpar.partition_uuid.upper() == lpar.uuid.upper()


def test_list_container_items_may_repeat(adapter):
    """Captures show one LogicalUnit per LogicalUnits; two are still a valid list."""
    from pypowervm.tasks import storage as tsk_stg
    from pypowervm.wrappers import storage as pvm_stg

    ssp = pvm_stg.SSP.get(adapter)[0]
    tier = tsk_stg.default_tier_for_ssp(ssp)
    tsk_stg.crt_lu(tier, "a", 1)
    tsk_stg.crt_lu(tier, "b", 1)
    ssp = pvm_stg.SSP.get(adapter, uuid=ssp.uuid)
    assert len(ssp.logical_units) == 2
    assert len(ssp.update().logical_units) == 2


def test_schema_elements_no_capture_shows_are_accepted(adapter, host):
    """A partition Description is in the real schema (pypowervm's child order)
    though no captured response carries one: not an unknown element."""
    pending = build(adapter, host)
    pending.set_parm_value("Description", "web tier")
    lpar = pending.create(parent=host)
    assert lpar.element.findtext("Description") == "web tier"
