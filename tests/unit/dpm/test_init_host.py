"""Start-up checks: every misconfiguration stops nova-compute naming the option."""

from __future__ import annotations

import logging
import socket
import ssl

import pytest
from nova import exception

from ibmvirt.conf import CONF
from ibmvirt.dpm import driver as dpm_driver
from ibmvirt.dpm import host as dpm_host
from tests.unit.dpm.conftest import HOST, make_env

UNKNOWN = "0badc0de-0000-4000-8000-000000000000"


def _init_fails(conf, gen="z13", **dpm):
    env = make_env(conf, gen, init=False, **dpm)
    with pytest.raises(exception.NovaException) as info:
        env.driver.init_host(HOST)
    return str(info.value)


def test_init_host_succeeds_and_reports_no_partitions(env):
    assert env.driver.list_instances() == []


def test_host_name_too_long_for_partition_names(conf):
    env = make_env(conf, "z13", init=False)
    conf.config(host="compute-node-0001x")  # 18 characters
    with pytest.raises(exception.InvalidConfiguration, match=r"\[DEFAULT\] host.*at most 17"):
        env.driver.init_host("compute-node-0001x")


def test_host_name_of_17_characters_is_fine(conf):
    env = make_env(conf, "z13", init=False)
    conf.config(host="compute-node-0001")
    env.driver.init_host("compute-node-0001")


def test_cpc_not_found(conf):
    msg = _init_fails(conf, cpc_object_id=UNKNOWN)
    assert f"[dpm] cpc_object_id {UNKNOWN}: no such CPC" in msg


def test_cpc_not_in_dpm_mode(conf):
    env = make_env(conf, "z13", init=False)
    env.cpc.properties["dpm-enabled"] = False
    with pytest.raises(exception.InvalidConfiguration, match="cpc_object_id.*not in DPM mode"):
        env.driver.init_host(HOST)


def test_cpc_not_operating(conf):
    env = make_env(conf, "z15", init=False)
    env.cpc.properties["status"] = "not-operating"
    with pytest.raises(exception.InvalidConfiguration, match="status 'not-operating'"):
        env.driver.init_host(HOST)


def test_max_processors_above_cpc_ifls(conf):
    msg = _init_fails(conf, max_processors=25)
    assert "[dpm] max_processors = 25 exceeds the 24 IFL processors of CPC Z13A" in msg


def test_max_memory_above_cpc_memory(conf):
    msg = _init_fails(conf, "z15", max_memory=2097153)
    assert "[dpm] max_memory = 2097153 MiB exceeds the 2097152 MiB" in msg


@pytest.mark.parametrize("option", ["cpc_object_id", "max_processors", "max_memory"])
def test_required_options(conf, option):
    msg = _init_fails(conf, **{option: None})
    assert f"[dpm] {option} is required" in msg


def test_storage_mappings_required(conf):
    msg = _init_fails(conf, physical_storage_adapter_mappings=[])
    assert "[dpm] physical_storage_adapter_mappings needs at least one" in msg


def test_storage_adapter_missing(conf):
    msg = _init_fails(conf, physical_storage_adapter_mappings=[f"{UNKNOWN}:0"])
    assert f"physical_storage_adapter_mappings entry {UNKNOWN}:0: CPC Z13A has no adapter" in msg


def test_storage_adapter_of_wrong_type(conf):
    env = make_env(conf, "z13", init=False)
    conf.config(group="dpm", physical_storage_adapter_mappings=[f"{env.ids.osa_adapter}:0"])
    with pytest.raises(exception.InvalidConfiguration, match="type 'osd'; it must be an FCP"):
        env.driver.init_host(HOST)


def test_storage_adapter_port_missing(conf):
    env = make_env(conf, "z15", init=False)
    conf.config(group="dpm", physical_storage_adapter_mappings=[f"{env.ids.fcp_adapters[0]}:1"])
    with pytest.raises(exception.InvalidConfiguration, match="FCP-0120 has no port 1"):
        env.driver.init_host(HOST)


def test_storage_adapter_port_listed_twice(conf):
    env = make_env(conf, "z13", init=False)
    port = f"{env.ids.fcp_adapters[0]}:0"
    conf.config(group="dpm", physical_storage_adapter_mappings=[port, port.upper()])
    with pytest.raises(exception.InvalidConfiguration, match="lists an adapter port twice"):
        env.driver.init_host(HOST)


def test_hmc_unreachable_names_the_hmc_options(conf):
    # A real zhmcclient session to a closed port on loopback: connection refused.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = make_env(conf, "z13", init=False, hmc=["127.0.0.1"], hmc_port=port)
    drv = dpm_driver.DPMDriver(env.virtapi)  # builds its session from [dpm]
    with pytest.raises(exception.HypervisorUnavailable, match=r"check \[dpm\] hmc, hmc_port"):
        drv.init_host(HOST)


# -- HMC session from options (no traffic: zhmcclient logs on lazily) ---------------


def _client(conf, **dpm):
    options = {"hmc": ["hmc1.example.com"], "hmc_username": "nova", "hmc_password": "pw-7f3a"}
    options.update(dpm)
    conf.config(group="dpm", **options)
    return dpm_host.build_client(CONF)


def test_session_verifies_tls_by_default_against_the_system_trust_store(conf):
    session = _client(conf).session
    paths = ssl.get_default_verify_paths()
    assert session.verify_cert == (paths.cafile or paths.capath)
    assert session.port == 6794


def test_session_uses_ca_bundle_and_all_hmcs(conf):
    session = _client(
        conf, hmc=["hmc1.example.com", "hmc2.example.com"], hmc_ca_file="/etc/nova/hmc-ca.pem"
    ).session
    assert session.verify_cert == "/etc/nova/hmc-ca.pem"
    assert session.host == ["hmc1.example.com", "hmc2.example.com"]


def test_insecure_session_warns_without_logging_password(conf, caplog):
    caplog.set_level(logging.DEBUG)
    session = _client(conf, hmc_insecure=True).session
    assert session.verify_cert is False
    assert "hmc_insecure" in caplog.text
    assert "pw-7f3a" not in caplog.text
    assert "pw-7f3a" not in repr(session)


@pytest.mark.parametrize("missing", ["hmc", "hmc_username", "hmc_password"])
def test_session_options_required(conf, missing):
    with pytest.raises(exception.InvalidConfiguration, match=rf"\[dpm\] {missing} must be set"):
        _client(conf, **{missing: [] if missing == "hmc" else None})
