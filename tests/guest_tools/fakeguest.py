"""A fake DPM guest for running the guest tools (guest-tools/dpm) with bash.

Each test gets a fresh root in tmp_path with the tools installed by their own
install.sh, a fake /proc/cmdline, a fake /sys tree and stub system commands
(chzdev, znetconf, cio_ignore, modprobe, ip, logger) in the root's /usr/sbin.
The tools find commands only under IBMVIRT_DPM_ROOT, never through PATH, so
the tests run them with a PATH that holds nothing, as udev does.

The stubs behave like the real commands as far as the tools can see: chzdev
and znetconf create the qeth group device in /sys (online, layer2, portno,
an interface enc<devno> with a firmware MAC), ip changes the interface's
address in /sys, modprobe creates the ccwgroup bus.

Interface renaming is modelled as systemd-udevd does it: the kernel names a
new interface eth<N> (N counts the qeth devices brought up, from 0); udev
substitutes %p in RUN+= while it applies the rules, then renames the interface
to enc<devno>, and only then runs the RUN programs. So the fake /sys holds only
enc<devno>, while the device path udev hands to ibmvirt-dpm-setmac names
eth<N> (FakeGuest.qeth()["event_devpath"], FakeGuest.udev_add()). The kernel
name is kept in kernel-names/<bus-id>, outside the fake /sys. Every stub appends its
argv to calls.log (one call a line, arguments tab-separated); logger also
appends the message to journal.log. Creating fail/<bus-id> in the root makes
chzdev and znetconf fail for that device.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "guest-tools" / "dpm"
NETCONFIG = "usr/sbin/ibmvirt-dpm-netconfig"
SETMAC = "usr/sbin/ibmvirt-dpm-setmac"
BASH = shutil.which("bash") or "/bin/bash"

# Shared by all stubs: where the fake root is, and the call log.
_PRELUDE = r"""#!/bin/bash
PATH=/usr/bin:/bin
root=@ROOT@
{ printf '%s' "${0##*/}"; printf '\t%s' "$@"; printf '\n'; } >>"$root/calls.log"
"""

# For chzdev and znetconf.
_MAKE_QETH = r"""
# make_qeth BUS_ID PORT: what the kernel shows once a qeth device is online.
make_qeth() {
    local bus_id=$1 port=$2 devno ifname dev
    devno=${bus_id#0.0.}
    ifname=enc$(printf '%x' "$((16#$devno))")
    dev=$root/sys/devices/qeth/$bus_id
    if [[ -e $root/fail/$bus_id ]]; then
        echo "${0##*/}: Error: could not set device $bus_id online" >&2
        exit 15
    fi
    mkdir -p "$dev/net/$ifname" "$root/sys/bus/ccwgroup/devices" "$root/sys/class/net"
    # The kernel's name for the interface, before udev renamed it.
    mkdir -p "$root/kernel-names"
    if [[ ! -e $root/kernel-names/$bus_id ]]; then
        local -a seen=("$root"/kernel-names/*)
        [[ -e ${seen[0]} ]] || seen=()
        echo "eth${#seen[@]}" >"$root/kernel-names/$bus_id"
    fi
    echo 1 >"$dev/online"
    echo 1 >"$dev/layer2"
    echo "$port" >"$dev/portno"
    echo "$ifname" >"$dev/if_name"
    printf '06:00:00:00:%s:%s\n' "${devno:0:2}" "${devno:2:2}" >"$dev/net/$ifname/address"
    ln -sfn "../../../devices/qeth/$bus_id" "$root/sys/bus/ccwgroup/devices/$bus_id"
    ln -sfn "../../devices/qeth/$bus_id/net/$ifname" "$root/sys/class/net/$ifname"
}
"""

STUBS = {
    "chzdev": _MAKE_QETH
    + r"""
# chzdev --enable --active --yes qeth R:W:D layer2=1 portno=P
id="" port=0
for arg in "$@"; do
    case $arg in
    0.0.*:0.0.*:0.0.*) id=${arg%%:*} ;;
    portno=*) port=${arg#portno=} ;;
    esac
done
[[ -n $id ]] || { echo "chzdev: stub needs a qeth group ID" >&2; exit 11; }
make_qeth "$id" "$port"
""",
    "znetconf": _MAKE_QETH
    + r"""
# znetconf -a 0.0.XXXX -o layer2=1 -o portno=P
id="" port=0
while (($#)); do
    case $1 in
    -a) id=$2; shift ;;
    -o) [[ $2 == portno=* ]] && port=${2#portno=}; shift ;;
    esac
    shift
done
[[ -n $id ]] || { echo "znetconf: stub needs -a" >&2; exit 19; }
make_qeth "$id" "$port"
""",
    "cio_ignore": "\n",
    "modprobe": r"""
case $1 in
ccwgroup) mkdir -p "$root/sys/bus/ccwgroup/devices" "$root/sys/bus/ccwgroup/drivers" ;;
qeth) mkdir -p "$root/sys/bus/ccwgroup/devices" "$root/sys/bus/ccwgroup/drivers/qeth" ;;
*) exit 1 ;;
esac
""",
    "ip": r"""
# ip link set dev IF address MAC
if [[ $1 == link && $2 == set && $3 == dev && $5 == address ]]; then
    if [[ ! -e $root/sys/class/net/$4/address ]]; then
        echo "Cannot find device \"$4\"" >&2
        exit 1
    fi
    echo "$6" >"$root/sys/class/net/$4/address"
    exit 0
fi
exit 1
""",
    "logger": r"""
# logger -t TAG -p PRIORITY -- MESSAGE
printf '%s\t%s\t%s\n' "$2" "$4" "$6" >>"$root/journal.log"
""",
}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class FakeGuest:
    """A guest image root with the DPM guest tools installed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        subprocess.run(
            [BASH, str(TOOLS / "install.sh"), str(root)],
            check=True,
            capture_output=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        for directory in ("proc", "dev", "sys/bus/ccwgroup/drivers/qeth", "usr/sbin", "sbin"):
            (root / directory).mkdir(parents=True, exist_ok=True)
        (root / "sys/bus/ccwgroup/devices").mkdir(parents=True, exist_ok=True)
        (root / "dev/console").write_text("")
        self.set_cmdline("root=/dev/disk/by-path/ccw-0.0.1000 ro")
        for name in STUBS:
            self.add_stub(name)

    # -- preparing the guest ------------------------------------------------

    def set_cmdline(self, cmdline: str | bytes) -> None:
        data = cmdline if isinstance(cmdline, bytes) else cmdline.encode()
        (self.root / "proc/cmdline").write_bytes(data + b"\n")

    def add_stub(self, name: str, directory: str = "usr/sbin") -> None:
        path = self.root / directory / name
        path.write_text(_PRELUDE.replace("@ROOT@", shlex.quote(str(self.root))) + STUBS[name])
        path.chmod(0o755)

    def remove_stub(self, name: str) -> None:
        for directory in ("usr/sbin", "sbin", "usr/bin", "bin"):
            (self.root / directory / name).unlink(missing_ok=True)

    def fail_device(self, bus_id: str) -> None:
        (self.root / "fail").mkdir(exist_ok=True)
        (self.root / "fail" / bus_id).write_text("")

    def unload_drivers(self) -> None:
        shutil.rmtree(self.root / "sys/bus/ccwgroup")

    def add_qeth(self, devno: str, port: int = 0, online: bool = True) -> None:
        """A qeth device that exists before the tools run (as the stubs make it)."""
        self.run_stub("chzdev", "--enable", "qeth", qeth_group(devno), f"portno={port}")
        if not online:
            (self.root / f"sys/devices/qeth/0.0.{devno}/online").write_text("0\n")
        (self.root / "calls.log").unlink()

    def run_stub(self, name: str, *args: str) -> None:
        subprocess.run([BASH, str(self.root / "usr/sbin" / name), *args], check=True)

    # -- running the tools --------------------------------------------------

    def run(self, tool: str, *args: str, env: dict[str, str] | None = None) -> Result:
        full_env = {"IBMVIRT_DPM_ROOT": str(self.root), "PATH": "/nonexistent"}
        full_env.update(env or {})
        proc = subprocess.run(
            [BASH, str(self.root / tool), *args],
            capture_output=True,
            text=True,
            errors="replace",
            env=full_env,
            cwd=self.root,
            timeout=30,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def netconfig(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self.run(NETCONFIG, *args, env=env)

    def setmac(self, devpath: str, env: dict[str, str] | None = None) -> Result:
        return self.run(SETMAC, devpath, env=env)

    def udev_add(self, devno: str, env: dict[str, str] | None = None) -> Result:
        """What udev runs for the add event of the interface of 0.0.<devno>:
        setmac with the device path of the kernel's name, renamed since."""
        return self.setmac(self.qeth(devno)["event_devpath"], env=env)

    # -- what a user would see ----------------------------------------------

    def calls(self, name: str | None = None) -> list[list[str]]:
        """The stub commands run, in order: all but logger, or those called name."""
        log = self.root / "calls.log"
        if not log.exists():
            return []
        calls = [line.split("\t") for line in log.read_text().splitlines()]
        if name is None:
            return [c for c in calls if c[0] != "logger"]
        return [c for c in calls if c[0] == name]

    def journal(self) -> list[str]:
        """Messages sent to the journal through logger, as 'TAG PRIORITY MESSAGE'."""
        log = self.root / "journal.log"
        if not log.exists():
            return []
        return [" ".join(line.split("\t")) for line in log.read_text().splitlines()]

    def console(self) -> str:
        return (self.root / "dev/console").read_text()

    def qeth(self, devno: str) -> dict[str, str] | None:
        """The sysfs attributes of group device 0.0.<devno>, or None if absent."""
        dev = self.root / f"sys/bus/ccwgroup/devices/0.0.{devno}"
        if not dev.exists():
            return None
        attrs = {a: (dev / a).read_text().strip() for a in ("online", "layer2", "portno")}
        (netdev,) = (dev / "net").iterdir()
        attrs["interface"] = netdev.name
        attrs["mac"] = (netdev / "address").read_text().strip()
        attrs["devpath"] = f"/devices/qeth/0.0.{devno}/net/{netdev.name}"
        kernel_name = (self.root / f"kernel-names/0.0.{devno}").read_text().strip()
        attrs["event_devpath"] = f"/devices/qeth/0.0.{devno}/net/{kernel_name}"
        return attrs

    def configured(self) -> dict[str, int]:
        """{bus-ID: port} of the qeth devices the tools configured (from the stub log)."""
        found = {}
        for call in self.calls("chzdev"):
            group = next(a for a in call if a.count(":") == 2)
            port = next(a for a in call if a.startswith("portno="))
            found[group.split(":")[0]] = int(port.split("=")[1])
        for call in self.calls("znetconf"):
            port = next(a for a in call if a.startswith("portno="))
            found[call[call.index("-a") + 1]] = int(port.split("=")[1])
        return found

    def macs_set(self) -> dict[str, str]:
        """{interface: MAC} set through ip."""
        return {c[4]: c[6] for c in self.calls("ip")}


def qeth_group(devno: str) -> str:
    """The chzdev ID of the qeth device at devno: read:write:data bus-IDs."""
    n = int(devno, 16)
    return ":".join(f"0.0.{n + i:04x}" for i in range(3))
