"""``ibmvirt-preflight`` run as an operator runs it: the console-script module
in its own process, a nova.conf file, a NovaLink (or HMC) emulator over real
HTTP(S). One line per check, OK or what to fix naming the option; exit status;
the password never printed."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import zhmcclient

from ibmvirt.emulators.hmc import inventories as hmc_inventories
from ibmvirt.emulators.hmc.server import HMCEmulator
from ibmvirt.emulators.novalink import app, tlsfiles
from tests.unit.powervm.test_init_host import PASSWORD, small

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
HMC_PASSWORD = "hmc-Pa55-w0rd"  # noqa: S105
CHECKS = [
    "[powervm] options",
    "NovaLink logon",
    "managed system",
    "VIOSes ready",
    "boot disk storage",
    "config drive media repository",
    "RMC management switch",
]


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> dict[str, str]:
        """check name -> its whole line."""
        out = {}
        for line in self.stdout.splitlines():
            status, _, rest = line.partition(" ")
            name = rest.split(":", 1)[0]
            out[name] = line
        return out

    def status(self, name: str) -> str:
        return self.lines[name].split(" ", 1)[0]


def _bare():
    """No media repository, no MGMTSWITCH."""
    inv = small()
    for vios in inv["vioses"]:
        for vg in vios.get("volume_groups", []):
            vg.pop("media_repository", None)
    inv["network"]["vswitches"] = ["ETHERNET0"]
    return inv


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every configuration below, run at once (each run is a new Python process)."""
    tmp = tmp_path_factory.mktemp("preflight")
    tokens = tmp / "tokens"
    tokens.mkdir(mode=0o700)
    ctx, tls = tlsfiles.prepare(str(tmp / "tls"))
    wrong_ca = tlsfiles.prepare(str(tmp / "wrong"))[1].ca_file
    plain = app.start(small(), token_dir=str(tokens), event_wait=0.3)
    https = app.start(small(), ssl_context=ctx, token_dir=str(tokens), event_wait=0.3)
    bare = app.start(_bare(), token_dir=str(tokens), event_wait=0.3)
    hmc = HMCEmulator(
        hmc_inventories.Z15, state_dir=str(tmp / "hmc"), credentials={"nova": HMC_PASSWORD}
    )
    hmc.start()
    try:
        dpm = _dpm_options(hmc)
        local = {"novalink_port": plain.port, "vios_ready_timeout": 0}
        remote = {
            "novalink_host": "127.0.0.1",
            "novalink_port": https.port,
            "novalink_username": "neo",
            "novalink_password": PASSWORD,
            "novalink_ca_file": tls.ca_file,
            "vios_ready_timeout": 0,
        }
        pvm = {"compute_driver": "ibmvirt.PowerVMDriver"}
        cases = {
            "good_local": (pvm, {**local, "volume_group_name": "datavg"}),
            "good_auto_vg": (pvm, local),
            "good_remote_ssp": (pvm, {**remote, "disk_driver": "ssp"}),
            "wrong_vg": (pvm, {**local, "volume_group_name": "nosuchvg"}),
            "no_cluster": (pvm, {**local, "disk_driver": "ssp", "cluster_name": "cluster-9"}),
            "wrong_password": (pvm, {**remote, "novalink_password": "not-" + PASSWORD}),
            "no_password": (pvm, {**remote, "novalink_password": ""}),
            "wrong_ca": (pvm, {**remote, "novalink_ca_file": wrong_ca}),
            "bad_value": (pvm, {**local, "disk_driver": "floppy"}),
            "bare_host": (pvm, {**local, "port": bare.port, "vopt_media_volume_group": "novg"}),
            "section_only": ({}, {**local, "volume_group_name": "datavg"}),
            "dpm_good": ({"compute_driver": "ibmvirt.DPMDriver", "host": "subset1"}, dpm),
            "dpm_wrong_password": (
                {"compute_driver": "ibmvirt.DPMDriver", "host": "subset1"},
                {**dpm, "hmc_password": "not-" + HMC_PASSWORD},
            ),
            "dpm_too_many_cpus": (
                {"compute_driver": "ibmvirt.DPMDriver", "host": "subset1"},
                {**dpm, "max_processors": 10000},
            ),
            "nothing": ({"compute_driver": "libvirt.LibvirtDriver"}, None),
        }
        # The environment trusts the right CA: novalink_ca_file must still win.
        env = {k: v for k, v in os.environ.items() if k != "OS_NOVA_DISABLE_EVENTLET_PATCHING"}
        env["REQUESTS_CA_BUNDLE"] = tls.ca_file
        paths = {}
        for name, (default, section) in cases.items():
            paths[name] = tmp / f"{name}.conf"
            paths[name].write_text(_conf(default, section, dpm=name.startswith("dpm")))
        with ThreadPoolExecutor(max_workers=6) as pool:
            futures = {n: pool.submit(_preflight, p, env) for n, p in paths.items()}
            yield {n: f.result() for n, f in futures.items()}
    finally:
        for srv in (plain, https, bare):
            srv.stop()
        hmc.stop()


def _conf(default: dict, section: dict | None, dpm: bool) -> str:
    lines = ["[DEFAULT]"] + [f"{k} = {v}" for k, v in default.items()]
    if section is not None:
        section = dict(section)
        if not dpm and "port" in section:
            section["novalink_port"] = section.pop("port")
        lines.append("[dpm]" if dpm else "[powervm]")
        for key, value in section.items():
            if isinstance(value, list):
                value = ",".join(value)
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def _preflight(path, env) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "ibmvirt.cmd.preflight", "--config-file", str(path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def _dpm_options(hmc) -> dict:
    session = zhmcclient.Session(
        "127.0.0.1", "nova", HMC_PASSWORD, port=hmc.port, verify_cert=hmc.ca_file
    )
    try:
        cpc = zhmcclient.Client(session).cpcs.list()[0]
        fcp = [
            a for a in cpc.adapters.list(full_properties=True) if a.get_property("type") == "fcp"
        ]
        return {
            "hmc": "127.0.0.1",
            "hmc_port": hmc.port,
            "hmc_username": "nova",
            "hmc_password": HMC_PASSWORD,
            "hmc_ca_file": hmc.ca_file,
            "cpc_object_id": cpc.get_property("object-id"),
            "max_processors": 2,
            "max_memory": 4096,
            "physical_storage_adapter_mappings": [f"{fcp[0].get_property('object-id')}:0"],
        }
    finally:
        session.logoff()


def _assert_no_secret(run: Run) -> None:
    for secret in (PASSWORD, HMC_PASSWORD):
        assert secret not in run.stdout
        assert secret not in run.stderr


# -- PowerVM ----------------------------------------------------------------------------------


def test_good_local_configuration(runs):
    run = runs["good_local"]
    assert run.rc == 0, run.stdout + run.stderr
    assert list(run.lines) == CHECKS
    assert all(line.startswith("OK ") for line in run.lines.values())
    assert run.lines["NovaLink logon"] == "OK NovaLink logon: local file logon"
    assert run.lines["managed system"] == "OK managed system: pvm-host-1 (8408-E8E*10678CV)"
    assert run.lines["boot disk storage"] == "OK boot disk storage: localdisk: volume group datavg"
    assert "repository VMLibrary in vios1/rootvg" in run.lines["config drive media repository"]
    assert run.lines["RMC management switch"] == "OK RMC management switch: MGMTSWITCH present"


def test_volume_group_auto_detected(runs):
    run = runs["good_auto_vg"]
    assert run.rc == 0, run.stdout
    assert run.lines["boot disk storage"] == "OK boot disk storage: localdisk: volume group datavg"


def test_good_remote_https_with_ssp(runs):
    run = runs["good_remote_ssp"]
    assert run.rc == 0, run.stdout + run.stderr
    assert run.lines["NovaLink logon"].startswith(
        "OK NovaLink logon: neo on 127.0.0.1, TLS verified with "
    )
    assert run.lines["boot disk storage"].startswith("OK boot disk storage: ssp: cluster cluster-1")
    _assert_no_secret(run)


def test_wrong_volume_group_name(runs):
    run = runs["wrong_vg"]
    assert run.rc == 1
    assert run.lines["boot disk storage"] == (
        "FAIL boot disk storage: [powervm] volume_group_name: no volume group 'nosuchvg' "
        "on this host's VIOSes"
    )
    assert [n for n, line in run.lines.items() if not line.startswith("OK ")] == [
        "boot disk storage"
    ]


def test_no_such_cluster(runs):
    run = runs["no_cluster"]
    assert run.rc == 1
    assert run.lines["boot disk storage"] == (
        "FAIL boot disk storage: [powervm] cluster_name: no cluster named 'cluster-9' "
        "(clusters: cluster-1)"
    )


def test_wrong_password(runs):
    run = runs["wrong_password"]
    assert run.rc == 1
    assert run.lines["NovaLink logon"].startswith("FAIL NovaLink logon: ")
    assert "check [powervm] novalink_username and novalink_password" in run.lines["NovaLink logon"]
    for name in CHECKS[2:]:
        assert run.status(name) == "SKIP"
    _assert_no_secret(run)


def test_remote_without_password(runs):
    run = runs["no_password"]
    assert run.rc == 1
    assert run.lines["[powervm] options"].startswith(
        "FAIL [powervm] options: [powervm] novalink_username/novalink_password: both are required"
    )
    assert {run.status(n) for n in CHECKS[1:]} == {"SKIP"}


def test_ca_file_that_did_not_sign_the_certificate(runs):
    """REQUESTS_CA_BUNDLE trusts the server: the configured CA file still decides."""
    run = runs["wrong_ca"]
    assert run.rc == 1
    line = run.lines["NovaLink logon"]
    assert line.startswith("FAIL NovaLink logon: ")
    assert "is not trusted by novalink_ca_file=" in line
    assert "set [powervm] novalink_ca_file to the CA bundle that signed it" in line
    _assert_no_secret(run)


def test_invalid_option_value(runs):
    run = runs["bad_value"]
    assert run.rc == 1
    assert run.lines["[powervm] options"].startswith("FAIL [powervm] options: ")
    assert "disk_driver" in run.lines["[powervm] options"]
    assert "floppy" in run.lines["[powervm] options"]


def test_host_without_media_repository_volume_group_or_mgmt_switch(runs):
    run = runs["bare_host"]
    assert run.rc == 1
    assert run.lines["config drive media repository"].startswith(
        "FAIL config drive media repository: [powervm] vopt_media_volume_group: no VIOS has a "
        "virtual media repository, nor a volume group 'novg'"
    )
    assert run.lines["RMC management switch"].startswith(
        "FAIL RMC management switch: [powervm] use_rmc_mgmt_vif: the host has no virtual "
        "switch MGMTSWITCH"
    )
    assert run.status("boot disk storage") == "OK"


def test_a_powervm_section_is_enough(runs):
    run = runs["section_only"]
    assert run.rc == 0, run.stdout
    assert list(run.lines) == CHECKS


def test_nothing_to_check(runs):
    run = runs["nothing"]
    assert run.rc == 2
    assert "compute_driver is 'libvirt.LibvirtDriver'" in run.stdout


# -- DPM --------------------------------------------------------------------------------------


def test_dpm_good(runs):
    run = runs["dpm_good"]
    assert run.rc == 0, run.stdout + run.stderr
    assert run.lines["[dpm] options"].startswith("OK [dpm] options: HMC 127.0.0.1, subset subset1")
    assert run.lines["HMC logon, CPC and [dpm] limits"].startswith(
        "OK HMC logon, CPC and [dpm] limits: CPC "
    )
    assert "[powervm] options" not in run.lines
    _assert_no_secret(run)


def test_dpm_wrong_password(runs):
    run = runs["dpm_wrong_password"]
    assert run.rc == 1
    line = run.lines["HMC logon, CPC and [dpm] limits"]
    assert line.startswith("FAIL ")
    assert "check [dpm] hmc_username and hmc_password" in line
    _assert_no_secret(run)


def test_dpm_more_processors_than_the_cpc(runs):
    run = runs["dpm_too_many_cpus"]
    assert run.rc == 1
    assert (
        "[dpm] max_processors = 10000 exceeds the" in run.lines["HMC logon, CPC and [dpm] limits"]
    )
