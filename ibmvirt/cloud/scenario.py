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

    def __init__(self, openstack: str, env: dict[str, str], say) -> None:
        self.openstack = openstack
        self.env = {**os.environ, **env}
        self.say = say
        self.calls = 0

    def __call__(self, *args: str, json_out: bool = True) -> Any:
        argv = [self.openstack, "--os-compute-api-version", "2.74", *args]
        if json_out:
            argv += ["-f", "json"]
        self.calls += 1
        proc = subprocess.run(argv, capture_output=True, env=self.env, check=False)  # noqa: S603
        if proc.returncode != 0:
            raise CloudError(f"`{' '.join(argv)}` failed: {proc.stderr.decode().strip()[-600:]}")
        out = proc.stdout.decode()
        return json.loads(out) if json_out and out.strip() else out

    def batch(self, *commands: str) -> None:
        """Several commands in one CLI process (its interactive mode reads them
        from stdin): each CLI start costs seconds on a loaded machine. The
        interactive mode's exit status says nothing; callers check the result."""
        self.calls += 1
        argv = [self.openstack, "--os-compute-api-version", "2.74"]
        subprocess.run(  # noqa: S603
            argv, input="\n".join(commands).encode(), capture_output=True, env=self.env, check=False
        )


def emulator_objects(port: int) -> dict[str, int]:
    with urllib.request.urlopen(  # noqa: S310  (loopback emulator)
        f"http://127.0.0.1:{port}/_emulator/state", timeout=30
    ) as resp:
        return json.loads(resp.read())["objects"]


def wait_status(cli: CLI, names: list[str], status: str, timeout: float = 300) -> dict:
    """Wait until every server in ``names`` has ``status``; returns the rows."""
    deadline = time.monotonic() + timeout
    seen: dict[str, dict] = {}
    while time.monotonic() < deadline:
        rows = cli("server", "list", "--name", f"^{PREFIX}-", "--long")
        seen = {r["Name"]: r for r in rows}
        errors = [n for n in names if seen.get(n, {}).get("Status") == "ERROR"]
        if errors:
            faults = [cli("server", "show", n).get("fault") for n in errors]
            raise CloudError(f"server went to ERROR waiting for {status}: {faults}")
        if status == "DELETED" and not seen:
            return {}
        if all(seen.get(n, {}).get("Status") == status for n in names):
            return seen
        time.sleep(2)
    states = {n: r.get("Status") for n, r in seen.items()}
    raise CloudError(f"timed out waiting for {names} to be {status}: {states}")


def wait_volume(cli: CLI, name: str, status: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    shown: dict = {}
    while time.monotonic() < deadline:
        shown = cli("volume", "show", name)
        if shown["status"] == status:
            return shown
        if shown["status"].startswith("error"):
            break
        time.sleep(2)
    raise CloudError(f"volume {name} is {shown.get('status')}, not {status}")


def volume(cli: CLI, server: str, say) -> None:
    """A Cinder volume on the emulated SAN, attached over vSCSI and detached."""
    vol = f"{PREFIX}-vol"
    cli("volume", "create", "--size", "1", vol)
    wait_volume(cli, vol, "available")
    cli("server", "add", "volume", server, vol, json_out=False)
    wait_volume(cli, vol, "in-use")
    say(f"volume {vol} on the emulated SAN attached to {server}")
    cli("server", "remove", "volume", server, vol, json_out=False)
    wait_volume(cli, vol, "available")
    cli("volume", "delete", vol, json_out=False)
    say(f"volume {vol} detached and deleted")


def cleanup(cli: CLI) -> None:
    """Remove what the scenario creates (also what an interrupted run left)."""
    servers = cli("server", "list", "--name", f"^{PREFIX}-")
    cli.batch(
        *(f"server delete --wait {row['ID']}" for row in servers),
        f"volume delete {PREFIX}-vol",
        f"subnet delete {PREFIX}-subnet",
        f"network delete {PREFIX}-net",
        f"flavor delete {PREFIX}-flavor",
        f"image delete {PREFIX}-image",
    )
    left = [r["Name"] for r in cli("image", "list") if r["Name"].startswith(PREFIX)]
    left += [r["Name"] for r in cli("network", "list") if r["Name"].startswith(PREFIX)]
    if left:
        raise CloudError(f"could not remove {left}")


def run(cloud) -> None:
    say = cloud.step
    cli = CLI(cloud.lay.bin("openstack"), cloud.os_env(), say)
    t0 = time.monotonic()
    running = cloud.lay.data / f".{PREFIX}-running"
    if running.exists():
        cleanup(cli)
        say("removed what an interrupted run left")
    running.touch()
    before = {h: emulator_objects(p) for h, p in POWERVM_HOSTS.items()}
    image = cloud.lay.data / f"{PREFIX}.img"
    image.write_bytes(os.urandom(IMAGE_SIZE))
    names = [f"{PREFIX}-{host}" for host in POWERVM_HOSTS]
    t_boot = time.monotonic()
    cli.batch(
        "image create --disk-format raw --container-format bare --property architecture=ppc64le"
        f" --file {image} {PREFIX}-image",
        f"flavor create --ram 2048 --vcpus 1 --disk 1 {PREFIX}-flavor",
        "network create --provider-network-type vlan --provider-physical-network physnet1"
        f" --provider-segment 2001 {PREFIX}-net",
        f"subnet create --network {PREFIX}-net --subnet-range 10.20.0.0/24 --no-dhcp"
        f" {PREFIX}-subnet",
        *(
            f"server create --image {PREFIX}-image --flavor {PREFIX}-flavor"
            f" --network {PREFIX}-net --host {host} {PREFIX}-{host}"
            for host in POWERVM_HOSTS
        ),
    )
    say("image, flavor, VLAN network and a server per PowerVM host created")
    rows = wait_status(cli, names, "ACTIVE")
    took = time.monotonic() - t_boot
    say(f"ACTIVE on {', '.join(POWERVM_HOSTS)} ({took:.0f} s after the image create)")
    for name, host in zip(names, POWERVM_HOSTS, strict=True):
        if rows[name]["Host"] != host:
            raise CloudError(f"{name} runs on {rows[name]['Host']}, not {host}")
        lpars = emulator_objects(POWERVM_HOSTS[host])["LogicalPartition"]
        if lpars != before[host]["LogicalPartition"] + 1:
            raise CloudError(f"{host}'s emulator has {lpars} LPARs, expected one more")

    volume(cli, names[0], say)

    for action, status in (("stop", "SHUTOFF"), ("start", "ACTIVE")):
        cli.batch(*(f"server {action} {name}" for name in names))
        wait_status(cli, names, status)
        say(f"{action}: {status}")

    cleanup(cli)
    say("servers, network, flavor and image deleted")
    image.unlink(missing_ok=True)
    for host, port in POWERVM_HOSTS.items():
        after = emulator_objects(port)
        left = {
            kind: (before[host].get(kind, 0), n)
            for kind, n in after.items()
            if not 0 <= n - before[host].get(kind, 0) <= MAY_STAY.get(kind, 0)
        }
        if left:
            raise CloudError(f"leftovers on {host} (kind: (before, after)): {left}")
    running.unlink()
    say(
        f"no leftovers on the emulated hosts; {cli.calls} CLI processes in "
        f"{time.monotonic() - t0:.0f} s"
    )
