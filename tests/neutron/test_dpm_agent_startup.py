"""What an operator sees when the DPM agent refuses to start: one message
naming the option line or option and the fix, and exit code 1 from the
console script, never a traceback or a hang."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import fixtures
import testtools
from oslo_config import cfg

from ibmvirt.neutron.agent import base, dpm
from tests.neutron.dpm_fixtures import DpmHmc

REPO = pathlib.Path(__file__).resolve().parents[2]
AGENT = pathlib.Path(sys.executable).parent / "ibmvirt-dpm-agent"
OPTION = "[dpm] physical_network_adapter_mappings"


class TestStartupRefusals(testtools.TestCase):
    def setUp(self):
        super().setUp()
        self.hmc = self.useFixture(DpmHmc())
        self.ids = self.hmc.ids

    def conf(self, mappings, **dpm_options) -> cfg.ConfigOpts:
        """Options as the agent reads them: a config file (so bad values fail on
        reading, as in production), overrides for the connection options."""
        ini = pathlib.Path(self.useFixture(fixtures.TempDir()).path) / "dpm.ini"
        ini.write_text(
            "[dpm]\n" + "".join(f"physical_network_adapter_mappings = {m}\n" for m in mappings)
        )
        conf = cfg.ConfigOpts()
        # oslo.config keeps overrides in the option group, which is shared by every
        # ConfigOpts the group is registered on: drop them after the test.
        self.addCleanup(conf.reset)
        conf.register_opt(cfg.StrOpt("host"))
        self.hmc.configure(conf, None)
        conf(["--config-file", str(ini)], project="ibmvirt-test")
        for name, value in dpm_options.items():
            conf.set_override(name, value, "dpm")
        return conf

    def refusal(self, mappings, **dpm_options) -> str:
        conf = self.conf(mappings, **dpm_options)
        error = self.assertRaises(base.AgentStartupError, dpm.make_manager, conf)
        return str(error)

    def test_each_bad_line_is_named(self):
        osa, hs, fcp = self.ids.osa_adapter, self.ids.hipersockets_adapter, self.ids.fcp_adapters[0]
        missing = "15a50000-0000-4000-8000-000000000999"
        cases = {
            "adapter missing": (
                [f"physnet1:{osa}", f"physnet2:{missing}"],
                f"{OPTION} line 2 (physnet2:{missing}:0): CPC Z15A has no adapter with "
                f"object-id {missing}",
            ),
            "wrong adapter type": (
                [f"physnet1:{fcp}"],
                f"{OPTION} line 1 (physnet1:{fcp}:0): adapter FCP-0120 has type 'fcp' "
                "(family 'ficon'); a physical network needs an OSA (osd) or HiperSockets adapter",
            ),
            "port missing": (
                [f"physnet1:{osa}:1", f"physnet2:{hs}:1"],
                f"{OPTION} line 2 (physnet2:{hs}:1): adapter HS-7C0 has no port 1 (its ports: 0)",
            ),
            "physnet twice": (
                [f"physnet1:{osa}:0", f"physnet1:{osa}:1"],
                f"{OPTION} line 2 (physnet1:{osa}:1): physical network 'physnet1' is already "
                "mapped by line 1",
            ),
            "adapter port twice": (
                [f"physnet1:{osa}", f"physnet2:{osa}:0"],
                f"{OPTION} line 2 (physnet2:{osa}:0): port 0 of adapter {osa} is already mapped "
                "by line 1 (physnet1)",
            ),
            "no line": ([], f"{OPTION} is empty"),
        }
        for why, (mappings, message) in cases.items():
            self.assertIn(message, self.refusal(mappings), why)

    def test_malformed_lines_refused_by_the_option_type(self):
        osa = self.ids.osa_adapter
        for line in (
            f"physnet1:{osa}:",
            f"physnet1:{osa}:,",
            f"phys,net1:{osa}",
            f"physnet1:{osa}:01",
        ):
            message = self.refusal([line])
            self.assertIn("physical_network_adapter_mappings", message, line)
            self.assertIn(repr(line), message, line)

    def test_port_missing_virtual_switch(self):
        self.hmc.remove_vswitch(self.ids.vswitch_osa_port1)
        message = self.refusal([f"physnet1:{self.ids.osa_adapter}:1"])
        self.assertIn(
            f"{OPTION} line 1 (physnet1:{self.ids.osa_adapter}:1): CPC Z15A has no virtual "
            "switch for port 1 of adapter OSA-0130",
            message,
        )

    def test_cpc_missing_or_not_in_dpm_mode(self):
        lines = [f"physnet1:{self.ids.osa_adapter}"]
        other = "15c0c000-0000-4000-8000-000000000999"
        self.assertIn(
            f"[dpm] cpc_object_id {other}: no such CPC on HMC 127.0.0.1",
            self.refusal(lines, cpc_object_id=other),
        )
        with self.hmc.emu.lock:
            self.hmc.emu.faked_hmc.cpcs.lookup_by_oid(self.ids.cpc).properties["dpm-enabled"] = (
                False
            )
        self.assertIn(
            f"[dpm] cpc_object_id {self.ids.cpc}: CPC Z15A is not in DPM mode",
            self.refusal(lines),
        )

    def test_hmc_unreachable_untrusted_or_refusing_the_logon(self):
        lines = [f"physnet1:{self.ids.osa_adapter}"]
        message = self.refusal(lines, hmc_password="wrong-password-1")
        self.assertIn("refuses the logon; check [dpm] hmc_username and hmc_password", message)
        self.assertNotIn("wrong-password-1", message)
        # Verification stays on without a CA file: the emulator's CA is not trusted.
        self.useFixture(fixtures.EnvironmentVariable("SSL_CERT_FILE"))
        message = self.refusal(lines, hmc_ca_file=None)
        self.assertIn(
            "cannot connect to HMC 127.0.0.1; check [dpm] hmc, hmc_port and hmc_ca_file", message
        )
        self.assertIn("CERTIFICATE_VERIFY_FAILED", message)
        conf = self.conf(lines)
        self.hmc.emu.stop(final=False)
        error = self.assertRaises(base.AgentStartupError, dpm.make_manager, conf)
        self.assertIn("cannot connect to HMC 127.0.0.1", str(error))
        self.hmc.emu.start()


class TestConsoleScript(testtools.TestCase):
    """The installed ``ibmvirt-dpm-agent`` as an operator runs it (the tree
    first on PYTHONPATH, so the script runs this checkout)."""

    def setUp(self):
        super().setUp()
        self.hmc = self.useFixture(DpmHmc())
        self.ids = self.hmc.ids
        self.dir = pathlib.Path(self.useFixture(fixtures.TempDir()).path)

    def write_config(self, mappings: list[str]) -> list[str]:
        neutron_conf = self.dir / "neutron.conf"
        neutron_conf.write_text(
            "[DEFAULT]\nhost = host1\ntransport_url = fake:/\n"
            "[AGENT]\nreport_interval = 0\n[SECURITYGROUP]\nfirewall_driver = noop\n"
        )
        lines = "".join(f"physical_network_adapter_mappings = {m}\n" for m in mappings)
        agent_ini = self.dir / "dpm.ini"
        agent_ini.write_text(
            "[dpm]\nhmc = 127.0.0.1\n"
            f"hmc_port = {self.hmc.emu.port}\nhmc_username = {self.hmc.hmc.userid}\n"
            f"hmc_password = {self.hmc.hmc.password}\nhmc_ca_file = {self.hmc.emu.ca_file}\n"
            f"cpc_object_id = {self.ids.cpc}\n{lines}"
        )
        return [str(AGENT), "--config-file", str(neutron_conf), "--config-file", str(agent_ini)]

    def env(self) -> dict:
        return {**os.environ, "PYTHONPATH": str(REPO), "OS_NOVA_DISABLE_EVENTLET_PATCHING": "1"}

    def test_bad_line_exit_code_1_and_message_on_stderr(self):
        hs = self.ids.hipersockets_adapter
        argv = self.write_config([f"physnet1:{self.ids.osa_adapter}", f"physnet2:{hs}:1"])
        result = subprocess.run(
            argv, env=self.env(), capture_output=True, text=True, timeout=120, cwd=self.dir
        )
        self.assertEqual(1, result.returncode, result.stderr)
        self.assertIn(
            f"ibmvirt-dpm-agent: {OPTION} line 2 (physnet2:{hs}:1): adapter HS-7C0 has no port 1",
            result.stderr,
        )
        self.assertNotIn("Traceback", result.stderr)
        self.assertNotIn(self.hmc.hmc.password, result.stderr)

    def test_good_configuration_starts_and_keeps_running(self):
        argv = self.write_config([f"physnet1:{self.ids.osa_adapter}"])
        log = self.dir / "agent.log"
        self.hmc.emu.log.clear()  # the fixture's own logon
        with open(log, "w") as out:
            proc = subprocess.Popen(argv, env=self.env(), stdout=out, stderr=out, cwd=self.dir)
        try:
            deadline = time.monotonic() + 60
            while "initialised for host host1; running" not in log.read_text():
                self.assertIsNone(proc.poll(), log.read_text())
                self.assertLess(time.monotonic(), deadline, log.read_text())
                time.sleep(0.2)
            # It polls the HMC (one Get Inventory per poll on this HMC 2.15).
            while self.hmc.emu.request_count("POST", r"^/api/services/inventory$") < 2:
                self.assertIsNone(proc.poll(), log.read_text())
                self.assertLess(time.monotonic(), deadline, log.read_text())
                time.sleep(0.2)
            # SIGTERM (systemctl stop) stops it gracefully.
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(0, proc.wait(timeout=60), log.read_text())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        self.assertIn("Stopping DPM agent agent", log.read_text())
        self.assertNotIn(self.hmc.hmc.password, log.read_text())
        # Every session it opened (start-up checks, the worker) is ended: none
        # is left on the HMC until it expires.
        logons = self.hmc.emu.request_count("POST", r"^/api/sessions$")
        self.assertEqual(2, logons)  # the start-up checks, the worker
        self.assertEqual(
            logons, self.hmc.emu.request_count("DELETE", r"^/api/sessions/this-session$")
        )
