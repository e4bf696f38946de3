"""``make cloud-test``: the real ``openstack`` CLI against the running cloud.

An image, a flavor and a VLAN network; one server booted from the image on
each PowerVM host; ACTIVE, stop (SHUTOFF), start (ACTIVE), delete; then
the emulated hosts must hold what they held before: no LPAR, client
adapter, vSCSI mapping or boot disk left. The only objects allowed to stay
are those a real host keeps too: the image's logical unit in the Shared
Storage Pool (uploaded once per cluster, never removed by the driver) and
the VLAN on the SEA (removed by the agent's next heal pass).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from typing import Any

from ibmvirt.cloud.layout import POWERVM_HOSTS
from ibmvirt.cloud.procs import CloudError

PREFIX = "cloudtest"
IMAGE_SIZE = 1 << 20
#: Object kinds whose count may grow during the scenario, and by how much: the
#: image's LU; the VLAN's virtual networks on the SEA (until a heal pass).
MAY_STAY = {"LogicalUnit": 1, "VirtualNetwork": 4}


class CLI:
    """The openstack CLI with the cloud's openrc, one process per call."""

    def __init__(self, env: dict[str, str], say) -> None:
        self.env = {**os.environ, **env}
        self.say = say
        self.calls = 0

    def __call__(self, *args: str, json_out: bool = True) -> Any:
        argv = ["openstack", "--os-compute-api-version", "2.74", *args]
        if json_out:
            argv += ["-f", "json"]
        self.calls += 1
        proc = subprocess.run(argv, capture_output=True, env=self.env, check=False)  # noqa: S603
        if proc.returncode != 0:
            raise CloudError(f"`{' '.join(argv)}` failed: {proc.stderr.decode().strip()[-600:]}")
        out = proc.stdout.decode()
        return json.loads(out) if json_out and out.strip() else out


def emulator_objects(port: int) -> dict[str, int]:
    with urllib.request.urlopen(  # noqa: S310  (loopback emulator)
        f"http://127.0.0.1:{port}/_emulator/state", timeout=30
    ) as resp:
        return json.loads(resp.read())["objects"]


def wait_status(cli: CLI, names: list[str], status: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        rows = cli("server", "list", "--name", f"^{PREFIX}-", "--long")
        seen = {r["Name"]: r["Status"] for r in rows}
        if any(seen.get(n) == "ERROR" for n in names):
            faults = [cli("server", "show", n).get("fault") for n in names if seen[n] == "ERROR"]
            raise CloudError(f"server went to ERROR waiting for {status}: {faults}")
        if all(seen.get(n) == status for n in names):
            return
        time.sleep(2)
    raise CloudError(f"timed out waiting for {names} to be {status}: {seen}")


def cleanup(cli: CLI) -> None:
    """Remove what an earlier, interrupted run left (the scenario is rerunnable)."""
    for row in cli("server", "list", "--name", f"^{PREFIX}-"):
        cli("server", "delete", "--wait", row["ID"], json_out=False)
    for kind in ("subnet", "network", "flavor", "image"):
        for row in cli(kind, "list"):
            if row["Name"].startswith(PREFIX):
                cli(kind, "delete", row["ID"], json_out=False)


def run(cloud) -> None:
    say = cloud.step
    cli = CLI(cloud.os_env(), say)
    t0 = time.monotonic()
    cleanup(cli)
    before = {h: emulator_objects(p) for h, p in POWERVM_HOSTS.items()}
    say(
        "emulators' objects before: "
        + ", ".join(f"{h}: {sum(o.values())}" for h, o in before.items())
    )

    image = cloud.lay.data / f"{PREFIX}.img"
    image.write_bytes(os.urandom(IMAGE_SIZE))
    cli(
        "image",
        "create",
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "--property",
        "architecture=ppc64le",
        "--file",
        str(image),
        f"{PREFIX}-image",
    )
    cli("flavor", "create", "--ram", "2048", "--vcpus", "1", "--disk", "1", f"{PREFIX}-flavor")
    cli(
        "network",
        "create",
        "--provider-network-type",
        "vlan",
        "--provider-physical-network",
        "physnet1",
        "--provider-segment",
        "2001",
        f"{PREFIX}-net",
    )
    cli(
        "subnet",
        "create",
        "--network",
        f"{PREFIX}-net",
        "--subnet-range",
        "10.20.0.0/24",
        "--no-dhcp",
        f"{PREFIX}-subnet",
    )
    say("image, flavor, network and subnet created")

    names = []
    t_boot = time.monotonic()
    for host in POWERVM_HOSTS:
        name = f"{PREFIX}-{host}"
        cli(
            "server",
            "create",
            "--image",
            f"{PREFIX}-image",
            "--flavor",
            f"{PREFIX}-flavor",
            "--network",
            f"{PREFIX}-net",
            "--host",
            host,
            name,
        )
        names.append(name)
    wait_status(cli, names, "ACTIVE")
    say(f"ACTIVE on {', '.join(POWERVM_HOSTS)} ({time.monotonic() - t_boot:.0f} s after create)")
    for name, host in zip(names, POWERVM_HOSTS, strict=True):
        shown = cli("server", "show", name)
        if shown["OS-EXT-SRV-ATTR:host"] != host:
            raise CloudError(f"{name} runs on {shown['OS-EXT-SRV-ATTR:host']}, not {host}")
        lpars = emulator_objects(POWERVM_HOSTS[host])["LogicalPartition"]
        if lpars != before[host]["LogicalPartition"] + 1:
            raise CloudError(f"{host}'s emulator has {lpars} LPARs, expected one more")

    for action, status in (("stop", "SHUTOFF"), ("start", "ACTIVE")):
        for name in names:
            cli("server", action, name, json_out=False)
        wait_status(cli, names, status)
        say(f"{action}: {status}")

    for name in names:
        cli("server", "delete", "--wait", name, json_out=False)
    say("servers deleted")
    cleanup(cli)
    image.unlink(missing_ok=True)

    for host, port in POWERVM_HOSTS.items():
        after = emulator_objects(port)
        left = {
            kind: (before[host].get(kind, 0), n)
            for kind, n in after.items()
            if n - before[host].get(kind, 0) > MAY_STAY.get(kind, 0)
            or n < before[host].get(kind, 0) - MAY_STAY.get(kind, 0)
        }
        if left:
            raise CloudError(f"leftovers on {host} (kind: (before, after)): {left}")
    say(
        f"no leftovers on the emulated hosts; {cli.calls} CLI calls in "
        f"{time.monotonic() - t0:.0f} s"
    )
