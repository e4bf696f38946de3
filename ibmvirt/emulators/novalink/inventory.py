"""YAML inventories: what the emulated host looks like at start-up.

A small inventory (``inventories/small.yaml``) describes one host with the
NovaLink partition, two VIOSes and their storage and network; the large one
adds ``generate_lpars: 500`` for scale work. See doc/novalink-emulator.md.
"""

from __future__ import annotations

import os
from importlib import resources
from typing import Any

import yaml

BUILTIN = ("small", "large")


class InventoryError(ValueError):
    """The inventory file is unusable; the message names the key and the fix."""


def builtin_path(name: str) -> str:
    """Path of a bundled inventory (``small`` or ``large``)."""
    return str(resources.files("ibmvirt.emulators.novalink") / "inventories" / f"{name}.yaml")


def load(source: str | dict[str, Any] | None) -> dict[str, Any]:
    """Load and check an inventory from a path, a bundled name, or a dict."""
    if source is None:
        source = "small"
    if isinstance(source, dict):
        inv = dict(source)
    else:
        path = builtin_path(source) if source in BUILTIN else source
        if not os.path.exists(path):
            raise InventoryError(
                f"Inventory {source!r} not found; pass a YAML file path or one of {BUILTIN}"
            )
        with open(path, encoding="utf-8") as f:
            inv = yaml.safe_load(f) or {}
    return normalise(inv)


def normalise(inv: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and refuse inconsistent entries."""
    host = inv.setdefault("host", {})
    if not isinstance(host, dict):
        raise InventoryError("'host' must be a mapping (name, memory_mb, proc_units, ...)")
    host.setdefault("name", "ibmvirt-pvm-host")
    host.setdefault("memory_mb", 524288)
    host.setdefault("proc_units", 40)
    host.setdefault("memory_region_mb", 256)
    _positive(host, "host", "memory_mb", int)
    _positive(host, "host", "proc_units", float)
    _positive(host, "host", "memory_region_mb", int)
    inv.setdefault(
        "management_partition", {"name": "novalink", "memory_mb": 2048, "proc_units": 0.5}
    )
    vioses = inv.setdefault("vioses", [{"name": "vios1"}, {"name": "vios2"}])
    if not isinstance(vioses, list) or len(vioses) > 2:
        raise InventoryError(
            "'vioses' must be a list of at most 2 VIOS entries (the captured templates "
            "provide two distinct VIOSes)"
        )
    for i, v in enumerate(vioses):
        if not isinstance(v, dict) or not v.get("name"):
            raise InventoryError(f"vioses[{i}] needs a 'name'")
        for key, typ in (("memory_mb", int), ("proc_units", float)):
            if key in v:
                _positive(v, f"vioses[{i}]", key, typ)
    names = [inv["management_partition"]["name"], *(v["name"] for v in vioses)]
    lpars = list(inv.setdefault("lpars", []))
    # Popped, so normalising an already-normalised inventory does not add them twice.
    for i in range(int(inv.pop("generate_lpars", 0) or 0)):
        lpars.append(
            {"name": f"scale-lpar-{i:04d}", "memory_mb": 512, "proc_units": 0.05, "vcpus": 1}
        )
    inv["lpars"] = lpars
    names += [lp["name"] for lp in lpars]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        shown = sorted(dupes)[:10]
        more = f" and {len(dupes) - 10} more" if len(dupes) > 10 else ""
        raise InventoryError(f"Partition names must be unique; duplicated: {shown}{more}")
    behaviour = inv.setdefault("behaviour", {})
    behaviour.setdefault("job_delay", 0.0)
    behaviour.setdefault("request_delay", 0.0)
    behaviour.setdefault("event_wait", 10.0)
    inv.setdefault("users", {"neo": "passw0rd"})
    return inv


def _positive(section: dict[str, Any], where: str, key: str, typ: type) -> None:
    try:
        value = typ(section[key])
    except (TypeError, ValueError) as exc:
        raise InventoryError(f"{where}.{key} must be a number, got {section[key]!r}") from exc
    if value <= 0:
        raise InventoryError(f"{where}.{key} must be greater than 0, got {value}")
    section[key] = value
