"""An agent whose options are bad exits 1 with oslo.config's message, no traceback."""

from __future__ import annotations

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
