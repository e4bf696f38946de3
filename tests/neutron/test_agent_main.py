"""An agent whose options are bad exits 1 with oslo.config's message, no traceback."""

from __future__ import annotations

import logging

from oslo_config import cfg

from ibmvirt.neutron.agent import base


def test_bad_option_value_is_a_start_up_error(capsys, tmp_path):
    conf = tmp_path / "agent.ini"
    conf.write_text("[SECURITYGROUP]\nfirewall_driver = noop\n")

    def make_manager():
        raise cfg.ConfigFileValueError("Value for option vnic_vf_capacity is not valid: 1.5")

    code = base.main(
        "Test agent", "test-agent", lambda c: None, make_manager, argv=["--config-file", str(conf)]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "test-agent: Value for option vnic_vf_capacity is not valid: 1.5" in err
    assert "Traceback" not in err


def test_a_firewall_driver_is_refused_naming_the_option(capsys, tmp_path):
    """Security groups cannot be enforced on firmware NICs: an agent configured
    to enforce them refuses to start rather than pretend."""
    conf = tmp_path / "agent.ini"
    conf.write_text("[SECURITYGROUP]\nfirewall_driver = iptables_hybrid\n")
    made = []
    code = base.main(
        "Test agent",
        "test-agent",
        lambda c: None,
        lambda: made.append(1),
        argv=["--config-file", str(conf)],
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "[SECURITYGROUP] firewall_driver = 'iptables_hybrid'" in err
    assert "set it to 'noop'" in err
    assert made == []  # refused before the hypervisor is asked anything


def test_the_noop_firewall_driver_is_accepted(monkeypatch, tmp_path):
    conf = tmp_path / "agent.ini"
    conf.write_text("[SECURITYGROUP]\nfirewall_driver = noop\n")
    launched = []
    monkeypatch.setattr(base.service, "launch", lambda *a, **k: launched.append(a) or _Waits())
    code = base.main(
        "Test agent", "test-agent", lambda c: None, _manager, argv=["--config-file", str(conf)]
    )
    assert code == 0
    assert len(launched) == 1
    # urllib3's per-retry warnings (every poll of an outage) are quiet.
    assert logging.getLogger("urllib3.connectionpool").getEffectiveLevel() == logging.ERROR


class _Waits:
    def wait(self):
        return 0


class _Manager(base.AgentManager):
    def get_all_devices(self):
        return set()

    def plug_interface(self, network_id, network_segment, device, device_owner):
        return True


def _manager():
    return _Manager("test-agent-host")
