"""Input from Neutron, Cinder and the configuration that must not steer HMC requests."""

from __future__ import annotations

import pytest
import zhmcclient
from nova import exception

from ibmvirt.conf import CONF
from ibmvirt.dpm import host as dpm_host
from ibmvirt.emulators.hmc import inventories
from ibmvirt.emulators.hmc.server import HMCEmulator
from tests.unit.dpm.conftest import connection_info, vif

MAC = "fa:16:3e:00:00:07"


@pytest.mark.parametrize(
    "object_id",
    ["x?x-injected=1", "../../cpcs", "", 7, "15d50000-0000-4000-8000-000000001300/../x"],
)
def test_vswitch_object_id_that_is_not_an_object_id_is_refused_before_any_request(env, object_id):
    inst = env.instance()
    env.spawn(inst)
    env.log.clear()
    with pytest.raises(exception.InterfaceAttachFailed) as info:
        env.driver.attach_interface(env.context, inst, None, vif("port-x", MAC, object_id))
    cause = info.value.__cause__
    assert isinstance(cause, exception.InvalidInput)
    if object_id:
        assert "is not an HMC object-id" in str(cause)
    # Nothing reached a virtual-switch URI, and no NIC was created.
    assert not [uri for _, uri in env.log.requests if "virtual-switches" in uri]
    assert not [m for m, uri in env.log.requests if m == "POST" and uri.endswith("/nics")]
    assert list(env.partition(inst).nics.list()) == []


def test_vswitch_object_id_is_refused_at_spawn_naming_the_port(env):
    inst = env.instance()
    with pytest.raises(exception.InvalidInput, match=r"port port-q: .*'x\?x-injected=1'"):
        env.spawn(inst, [vif("port-q", MAC, "x?x-injected=1")])


def test_vswitch_object_id_in_upper_case_is_accepted(env):
    inst = env.instance()
    env.spawn(inst, [vif("port-u", MAC, env.ids.vswitch_osa_port0.upper())])
    assert [n.properties["name"] for n in env.partition(inst).nics.list()] == [
        "OpenStack_Port_port-u"
    ]


def test_volume_id_with_regex_characters_detaches_only_its_volume(z15, monkeypatch):
    from nova import objects

    sizes = {"vol-a": 5, "vol-b|.*": 5}

    def get(context, volume_id, instance_uuid, expected_attrs=None):
        return objects.BlockDeviceMapping(volume_id=volume_id, volume_size=sizes[volume_id])

    monkeypatch.setattr(objects.BlockDeviceMapping, "get_by_volume_and_instance", get)
    env = z15
    inst = env.instance()
    env.spawn(inst)
    wwpns = env.driver.get_volume_connector(inst)["wwpns"]
    for lun, volume_id in ((2, "vol-a"), (3, "vol-b|.*")):
        info = connection_info(wwpns, lun=lun, volume_id=volume_id)
        env.driver.attach_volume(env.context, info, inst, "/dev/sdb")

    def names():
        (sg,) = env.storage_groups()
        return {v.properties["name"] for v in sg.storage_volumes.list()}

    assert names() == {"OpenStack-vol-a", "OpenStack-vol-b|.*", "OpenStack-vol-boot"}
    info = connection_info(wwpns, lun=3, volume_id="vol-b|.*")
    env.driver.detach_volume(env.context, info, inst, "/dev/sdc")
    assert names() == {"OpenStack-vol-a", "OpenStack-vol-boot"}


# -- [dpm] hmc_ca_file unset: the system trust store ------------------------------------


def _configure(conf, **dpm):
    options = {"hmc": ["127.0.0.1"], "hmc_username": "nova", "hmc_password": "pw"}
    options.update(dpm)
    conf.config(group="dpm", **options)


def test_unset_ca_file_means_the_system_trust_store_not_certifi(conf, monkeypatch, tmp_path):
    """An HMC whose CA the system trusts (here: SSL_CERT_FILE) is reachable."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with HMCEmulator(inventories.Z13, state_dir=str(tmp_path / "hmc")) as emu:
        monkeypatch.setenv("SSL_CERT_FILE", emu.ca_file)
        _configure(conf, hmc_port=emu.port)
        client = dpm_host.build_client(CONF)
        assert client.session.verify_cert == emu.ca_file
        assert client.query_api_version()["api-major-version"] >= 1
        client.session.logoff()


def test_unset_ca_file_does_not_trust_what_the_system_does_not(conf, monkeypatch, tmp_path):
    other = tmp_path / "other-ca.pem"
    with HMCEmulator(inventories.Z13, state_dir=str(tmp_path / "a")) as emu_a:
        other.write_bytes(open(emu_a.ca_file, "rb").read())
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    with HMCEmulator(inventories.Z13, state_dir=str(tmp_path / "b")) as emu:
        _configure(conf, hmc_port=emu.port)
        client = dpm_host.build_client(CONF)
        with pytest.raises(zhmcclient.ConnectionError):
            client.session.logon()


def test_no_system_trust_store_fails_naming_the_option(conf, monkeypatch, tmp_path):
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "missing"))
    _configure(conf)
    with pytest.raises(exception.InvalidConfiguration, match=r"set \[dpm\] hmc_ca_file"):
        dpm_host.build_client(CONF)
