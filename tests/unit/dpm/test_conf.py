"""[dpm] options as an operator writes them in nova.conf."""

from __future__ import annotations

import pytest
from oslo_config import cfg

from ibmvirt.conf import dpm as dpm_conf
from ibmvirt.conf import types

ADAPTER = "13FC0000-0000-4000-8000-000000000120"


def _load(tmp_path, text: str) -> cfg.ConfigOpts:
    path = tmp_path / "nova.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    dpm_conf.register_opts(conf)
    conf(["--config-file", str(path)], project="nova")
    return conf


def test_options_parse_from_a_config_file(tmp_path):
    conf = _load(
        tmp_path,
        "[dpm]\n"
        "hmc = hmc1.example.com, hmc2.example.com\n"
        "hmc_password = s3cret\n"
        "cpc_object_id = 13C0C000-0000-4000-8000-000000000001\n"
        "max_memory = 4096\n"
        f"physical_storage_adapter_mappings = {ADAPTER}:0\n"
        f"physical_storage_adapter_mappings = {ADAPTER.replace('120', '121')}:1\n"
        "target_wwpn_ignore_list = 500507680b214ac1,500507680b224ac1\n",
    )
    dpm = conf.dpm
    assert dpm.hmc == ["hmc1.example.com", "hmc2.example.com"]
    assert dpm.cpc_object_id == "13c0c000-0000-4000-8000-000000000001"
    assert dpm.physical_storage_adapter_mappings == [
        types.AdapterPort(ADAPTER.lower(), "0"),
        types.AdapterPort(ADAPTER.lower().replace("120", "121"), "1"),
    ]
    assert dpm.target_wwpn_ignore_list == ["500507680b214ac1", "500507680b224ac1"]
    assert dpm.hmc_insecure is False
    assert dpm.hmc_port == 6794


@pytest.mark.parametrize(
    "line",
    [
        "cpc_object_id = not-an-object-id",
        f"physical_storage_adapter_mappings = {ADAPTER}:4",
        f"physical_storage_adapter_mappings = {ADAPTER}",
        "max_memory = 256",
        "max_processors = 0",
    ],
)
def test_malformed_values_are_refused_naming_the_option(tmp_path, line):
    conf = _load(tmp_path, f"[dpm]\n{line}\n")
    option = line.split(" = ")[0]
    with pytest.raises(cfg.ConfigFileValueError, match=option):
        getattr(conf.dpm, option)


def test_list_opts_exposes_every_option_once_and_hides_the_password():
    ((group, opts),) = dpm_conf.list_opts()
    assert group.name == "dpm"
    names = [o.name for o in opts]
    assert len(names) == len(set(names))
    assert {
        "hmc",
        "hmc_username",
        "hmc_password",
        "hmc_ca_file",
        "cpc_object_id",
        "max_processors",
        "max_memory",
        "physical_storage_adapter_mappings",
        "target_wwpn_ignore_list",
    } <= set(names)
    secret = {o.name for o in opts if o.secret}
    assert secret == {"hmc_password"}


def test_mapping_type_round_trips_for_the_sample_generator():
    mapping = types.StorageAdapterMapping()
    value = mapping(f"{ADAPTER}:2")
    assert value == types.AdapterPort(ADAPTER.lower(), "2")
    assert mapping._formatter(value) == f"{ADAPTER.lower()}:2"
