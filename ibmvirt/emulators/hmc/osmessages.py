"""Operating system messages of emulated partitions (List OS Messages & co).

Why: a DPM driver's ``get_console_output`` reads ``Partition.list_os_messages()``.
The faked HMC has no OS console, so the emulator keeps a bounded message log per
partition and writes plausible Linux boot and shutdown messages when a partition
starts or stops, so console output is non-empty and changes with the lifecycle.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

# The HMC keeps only a limited amount of message data per partition; older
# messages drop out, which shows up as a gap in the sequence numbers.
MAX_MESSAGES = 500


def _now_ms() -> int:
    return int(time.time() * 1000)


class OSMessageLog:
    """The retained OS messages of one partition (sequence numbers never reused)."""

    def __init__(self) -> None:
        self._messages: deque[dict[str, Any]] = deque(maxlen=MAX_MESSAGES)
        self._next_seq = 0

    def add(self, text: str, *, os_name: str = "", is_priority: bool = False) -> int:
        """Append one message; returns its sequence number."""
        seq = self._next_seq
        self._next_seq += 1
        self._messages.append(
            {
                "sequence-number": seq,
                "message-id": f"{seq:08X}",
                "message-text": text,
                "timestamp": _now_ms(),
                "sound-alarm": False,
                "is-priority": is_priority,
                "is-held": False,
                "prompt-text": None,
                "os-name": os_name,
            }
        )
        return seq

    def list(self, begin: int | None = None, end: int | None = None) -> list[dict[str, Any]]:
        """Messages with begin <= sequence-number <= end (either bound optional)."""
        return [
            dict(m)
            for m in self._messages
            if (begin is None or m["sequence-number"] >= begin)
            and (end is None or m["sequence-number"] <= end)
        ]


def boot_messages(partition: dict[str, Any]) -> list[str]:
    """Plausible s390x Linux boot messages for a partition's properties."""
    name = partition.get("name", "")
    mem = partition.get("initial-memory", 0)
    ifls = partition.get("ifl-processors", 0) or partition.get("cp-processors", 0)
    boot = partition.get("boot-device", "none")
    if boot == "none":
        return [f"Partition {name}: started; no boot device is configured, nothing to load"]
    lines = [
        f"Partition {name}: IPL from {boot} started",
        "Linux version 6.8.0-45-generic (buildd@bos02-s390x) (gcc 13.2.0) #45-Ubuntu SMP",
        "setup: Linux is running natively in 64-bit mode",
        f"setup: The maximum memory size is {mem}MB",
        f"smp: Brought up 1 node, {ifls} CPUs",
    ]
    if boot == "storage-volume":
        lines.append(
            "zfcp: Booting from storage volume " + str(partition.get("boot-storage-volume"))
        )
    elif boot == "storage-adapter":
        lines.append(
            "zfcp: Booting from WWPN 0x{} LUN 0x{}".format(
                partition.get("boot-world-wide-port-name", ""),
                partition.get("boot-logical-unit-number", ""),
            )
        )
    params = partition.get("boot-os-specific-parameters") or ""
    if params:
        lines.append(f"Kernel command line: {params}")
    lines += [
        "qeth: register layer 2 discipline",
        "systemd[1]: Reached target Multi-User System.",
        f"{name} login: ",
    ]
    return lines


def shutdown_messages(partition: dict[str, Any]) -> list[str]:
    """Messages a partition logs when it is stopped."""
    return [
        "systemd-shutdown[1]: Syncing filesystems and block devices.",
        "reboot: System halted",
        f"Partition {partition.get('name', '')}: stopped",
    ]
