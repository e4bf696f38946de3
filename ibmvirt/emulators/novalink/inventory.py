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
    limit = host.get("max_active_migrations", 16)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise InventoryError(
            f"host.max_active_migrations must be a whole number >= 0 (0: the system takes "
            f"no active migration), got {limit!r}"
        )
    modes = host.get("proc_compat_modes")
    if modes is not None and (
        not isinstance(modes, list) or not modes or not all(isinstance(m, str) for m in modes)
    ):
        raise InventoryError(
            "host.proc_compat_modes must be a non-empty list of mode names "
            "(e.g. [default, POWER6, POWER7])"
        )
    inv.setdefault(
        "management_partition", {"name": "novalink", "memory_mb": 2048, "proc_units": 0.5}
    )
    _management_io(inv["management_partition"])
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


def _management_io(mgmt: Any) -> None:
    """Check ``io_server`` and the files and RBD images it serves.

    Only a management partition served as an I/O server (NovaLink hosting
    File I/O and RBD storage) has files and images to map, so declaring them
    without ``io_server: true`` is a mistake worth naming at start-up.
    """
    where = "management_partition"
    if not isinstance(mgmt, dict):
        raise InventoryError(f"'{where}' must be a mapping (name, memory_mb, proc_units, ...)")
    io_server = mgmt.setdefault("io_server", False)
    if not isinstance(io_server, bool):
        raise InventoryError(f"{where}.io_server must be true or false, got {io_server!r}")
    for key, ident in (("files", "path"), ("rbd_images", "name")):
        entries = mgmt.get(key) or []
        if entries and not io_server:
            raise InventoryError(
                f"{where}.{key} needs {where}.io_server: true (only an I/O server "
                "management partition maps File I/O and RBD storage)"
            )
        if not isinstance(entries, list):
            raise InventoryError(f"{where}.{key} must be a list of {ident}s")
        mgmt[key] = [backing_entry(e, ident, f"{where}.{key}[{i}]") for i, e in enumerate(entries)]
    vgs = mgmt.get("volume_groups") or []
    if vgs and not io_server:
        raise InventoryError(
            f"{where}.volume_groups needs {where}.io_server: true (only an I/O server "
            "management partition holds file-backed volume groups)"
        )
    if not isinstance(vgs, list):
        raise InventoryError(f"{where}.volume_groups must be a list of volume groups")
    for i, vg in enumerate(vgs):
        at = f"{where}.volume_groups[{i}]"
        if not isinstance(vg, dict) or not isinstance(vg.get("name"), str) or not vg["name"]:
            raise InventoryError(f"{at} needs a 'name' (a string), got {vg!r}")
        vg.setdefault("path", f"/var/lib/novalink/vg/{vg['name']}")
        vg.setdefault("size_gb", 100)
        if not str(vg["path"]).startswith("/"):
            raise InventoryError(f"{at}: path {vg['path']!r} must be absolute")
        _positive(vg, at, "size_gb", float)
    mgmt["volume_groups"] = vgs


def backing_entry(entry: Any, ident: str, where: str) -> dict[str, Any]:
    """A declared file (``path``) or RBD image (``name``): a bare string or a
    mapping with ``size_gb`` (default 1). Files need absolute paths, as the
    management partition resolves no relative ones. Also used by the control
    endpoint, whose callers get the same messages."""
    if isinstance(entry, str):
        entry = {ident: entry}
    if not isinstance(entry, dict) or not isinstance(entry.get(ident), str) or not entry[ident]:
        raise InventoryError(f"{where} needs a '{ident}' (a string), got {entry!r}")
    out = {ident: entry[ident], "size_gb": entry.get("size_gb", 1)}
    if ident == "path" and not out["path"].startswith("/"):
        raise InventoryError(f"{where}: file path {out['path']!r} must be absolute")
    _positive(out, where, "size_gb", float)
    return out


def _positive(section: dict[str, Any], where: str, key: str, typ: type) -> None:
    try:
        value = typ(section[key])
    except (TypeError, ValueError) as exc:
        raise InventoryError(f"{where}.{key} must be a number, got {section[key]!r}") from exc
    if value <= 0:
        raise InventoryError(f"{where}.{key} must be greater than 0, got {value}")
    section[key] = value
