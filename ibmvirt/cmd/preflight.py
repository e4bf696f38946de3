"""``ibmvirt-preflight``: check a nova.conf against the NovaLink or HMC it names.

    ibmvirt-preflight --config-file /etc/nova/nova.conf

Runs the checks nova-compute's init_host runs (the drivers' own functions)
and prints one line per check: ``OK <check>[: detail]``, ``FAIL <check>:
<what to fix, naming the option>``, or ``SKIP`` when a check it needs failed.
Nothing is created or changed and nova-compute is not started. PowerVM is
checked for ``compute_driver = ibmvirt.PowerVMDriver`` or a ``[powervm]``
section, DPM for ``ibmvirt.DPMDriver`` or a ``[dpm]`` section. Exit status 0
when every check passed, 1 when one did not, 2 when there is nothing to check.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from oslo_config import cfg

from ibmvirt.common import preflight

POWERVM_DRIVER = "ibmvirt.PowerVMDriver"
DPM_DRIVER = "ibmvirt.DPMDriver"


def _read_group(conf: cfg.ConfigOpts, group: str) -> None:
    """Read every option of ``group``: a bad value fails here, naming the option."""
    for name in conf[group]:
        try:
            getattr(conf[group], name)
        except (cfg.ConfigFileValueError, ValueError) as exc:
            raise cfg.ConfigFileValueError(f"[{group}] {name}: {exc}") from exc


def powervm_checks(conf: cfg.ConfigOpts) -> tuple[list[preflight.Check], Callable[[], None]]:
    """init_host's checks against the NovaLink, and how to log off afterwards."""
    from ibmvirt.common import novalink
    from ibmvirt.powervm import disk as pvm_disk
    from ibmvirt.powervm import media
    from ibmvirt.powervm.host import Host

    host = Host(conf)
    pvm = conf.powervm

    def options() -> str:
        _read_group(conf, "powervm")
        args = novalink.session_args(conf)
        novalink.tls_verify(conf)
        return f"disk_driver = {pvm.disk_driver}, NovaLink {args['host']}"

    def logon() -> str:
        host.connect(conn_tries=1)
        if not pvm.novalink_host:
            return "local file logon"
        verify = novalink.tls_verify(conf)
        if host.adapter.session.protocol != "https":
            tls = "plain http: the password crosses the network in clear (novalink_protocol)"
        elif verify is False:
            tls = "TLS not verified (novalink_insecure)"
        else:
            tls = f"TLS verified with {verify if isinstance(verify, str) else 'the system store'}"
        return f"{pvm.novalink_username} on {pvm.novalink_host}, {tls}"

    def system() -> str:
        sys_w = host.check_system()
        return f"{sys_w.system_name} ({sys_w.mtms.mtms_str})"

    def vioses() -> str:
        host.check_vioses()
        return f"within vios_ready_timeout = {pvm.vios_ready_timeout} s"

    def storage() -> str:
        driver = pvm_disk.load(pvm.disk_driver, host, conf)
        driver.check()
        if pvm.disk_driver == "ssp":
            return f"ssp: cluster {driver.cluster.name}, {len(driver.vios_uuids)} VIOS(es) here"
        return f"localdisk: volume group {driver.vg_name}"

    checks = [
        preflight.Check("[powervm] options", options),
        preflight.Check("NovaLink logon", logon, needs=("[powervm] options",)),
        preflight.Check("managed system", system, needs=("NovaLink logon",)),
        preflight.Check("VIOSes ready", vioses, needs=("managed system",)),
        preflight.Check("boot disk storage", storage, needs=("VIOSes ready",)),
        preflight.Check(
            "config drive media repository",
            lambda: media.check_repository(host.adapter, conf),
            needs=("VIOSes ready",),
        ),
        preflight.Check("RMC management switch", host.check_rmc_switch, needs=("managed system",)),
    ]
    return checks, host.stop


def dpm_checks(conf: cfg.ConfigOpts) -> tuple[list[preflight.Check], Callable[[], None]]:
    """init_host's checks against the HMC and CPC, and how to log off afterwards."""
    from ibmvirt.dpm import host as dpm_host

    clients: list = []

    def options() -> str:
        _read_group(conf, "dpm")
        clients.append(dpm_host.build_client(conf))
        return f"HMC {', '.join(conf.dpm.hmc)}, subset {conf.host}"

    def cpc() -> str:
        hyper = dpm_host.Host(clients[0], conf, conf.host)
        hyper.init()
        return (
            f"CPC {hyper.cpc.get_property('name')}: {conf.dpm.max_processors} IFLs, "
            f"{conf.dpm.max_memory} MiB, {len(hyper.storage_ports)} FCP port(s)"
        )

    def logoff() -> None:
        for client in clients:
            if client.session.is_logon():
                client.session.logoff()

    checks = [
        preflight.Check("[dpm] options", options),
        preflight.Check("HMC logon, CPC and [dpm] limits", cpc, needs=("[dpm] options",)),
    ]
    return checks, logoff


def wanted(conf: cfg.ConfigOpts) -> list[str]:
    """Which drivers this nova.conf configures."""
    sections = set(conf.list_all_sections())
    driver = conf.compute_driver
    out = []
    if driver == POWERVM_DRIVER or "powervm" in sections:
        out.append("powervm")
    if driver == DPM_DRIVER or "dpm" in sections:
        out.append("dpm")
    return out


def run(conf: cfg.ConfigOpts, out: TextIO) -> int:
    """Run the checks of every configured driver; the exit status."""
    drivers = wanted(conf)
    if not drivers:
        print(
            f"FAIL configuration: compute_driver is {conf.compute_driver!r} and there is no "
            f"[powervm] or [dpm] section; nothing to check (compute_driver = {POWERVM_DRIVER} "
            f"or {DPM_DRIVER})",
            file=out,
        )
        return 2
    secrets = [conf.powervm.novalink_password, conf.dpm.hmc_password]
    ok = True
    for name in drivers:
        checks, close = (powervm_checks if name == "powervm" else dpm_checks)(conf)
        try:
            ok = preflight.run(checks, out, secrets) and ok
        finally:
            try:
                close()
            except Exception as exc:  # noqa: BLE001  (logoff is best effort)
                logging.getLogger(__name__).warning("logoff failed: %s", exc)
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    from nova import conf as nova_conf  # registers Nova's options

    import ibmvirt.conf  # noqa: F401  (registers [powervm] and [dpm])

    conf = nova_conf.CONF
    try:
        conf(
            list(sys.argv[1:] if argv is None else argv),
            project="nova",
            prog="ibmvirt-preflight",
            description="Check nova.conf against the NovaLink or HMC it names, "
            "without starting nova-compute.",
        )
    except cfg.Error as exc:
        print(f"FAIL configuration: {exc}", file=sys.stdout)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run(conf, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
