"""The emulator's object store: every REST-addressable object and its ETags.

An object's XML holds all its extended attribute groups (``group="..."``
children). Each group, and the base (ungrouped) part, has its own version, so
the ETag a client sees depends on the groups it asked for: changing a VIOS's
SCSI mappings does not invalidate a client holding only its storage view, as on
the real server.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable
from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import errors
from ibmvirt.emulators.novalink import xmlutil as x

BASE = "base"
Groups = frozenset[str] | None  # None = every group


def parse_groups(value: str | None) -> Groups:
    """``?group=`` value -> groups. Absent or 'All' = all; 'None' = base only."""
    if value is None or value == "All":
        return None
    if value in ("None", ""):
        return frozenset()
    return frozenset(v for v in value.split(",") if v and v != "None")


def groups_query(groups: Groups) -> str:
    """Inverse of parse_groups, sorted as pypowervm writes it."""
    if groups is None:
        return "All"
    return ",".join(sorted(groups)) if groups else "None"


class Resource:
    """One REST object (ManagedSystem, LPAR, VIOS, VolumeGroup, CNA, ...)."""

    _serial = 0
    _serial_lock = threading.Lock()

    def __init__(
        self,
        kind: str,
        uuid: str,
        elem: etree._Element,
        parent: Resource | None = None,
        rootable: bool = True,
    ) -> None:
        self.kind = kind
        self.uuid = uuid
        self.elem = elem
        self.parent = parent
        self.rootable = rootable
        self.published = x.now_iso()
        self.versions: dict[str, int] = {BASE: 1}
        # Server-side bookkeeping that is not part of the payload.
        self.ext: dict[str, Any] = {}
        with Resource._serial_lock:
            Resource._serial += 1
            self.serial = Resource._serial

    # ---- paths -----------------------------------------------------------
    @property
    def path(self) -> str:
        """Canonical path used for SELF links and event data."""
        if self.rootable or self.parent is None:
            return f"/rest/api/uom/{self.kind}/{self.uuid}"
        return f"{self.parent.path}/{self.kind}/{self.uuid}"

    @property
    def ms_path(self) -> str:
        """Path under the ManagedSystem, as NovaLink events name partitions."""
        if self.parent is not None and self.parent.kind == "ManagedSystem":
            return f"{self.parent.path}/{self.kind}/{self.uuid}"
        return self.path

    # ---- versions / etags --------------------------------------------------
    def bump(self, section: str = BASE) -> None:
        """Record a change to the base part or to one extended group."""
        self.versions[section] = self.versions.get(section, 0) + 1

    def etag(self, groups: Groups) -> str:
        """ETag of the view selected by ``groups``."""
        keys = sorted(self.versions) if groups is None else [BASE, *sorted(groups)]
        scope = "all" if groups is None else "some"
        raw = f"{self.serial}:{scope}:" + ";".join(f"{k}={self.versions.get(k, 0)}" for k in keys)
        return str(zlib.crc32(raw.encode()) - (1 << 31))

    # ---- views -----------------------------------------------------------
    def view(self, groups: Groups) -> etree._Element:
        """Copy of the payload with only the requested extended groups."""
        el = x.deep(self.elem)
        if groups is not None:
            doomed = [
                c
                for c in el.iter()
                if c is not el
                and isinstance(c.tag, str)
                and c.get("group") not in (None, "None")
                and c.get("group") not in groups
            ]
            for c in doomed:
                p = c.getparent()
                if p is not None:
                    p.remove(c)
        return el

    def section_of(self, child_name: str) -> str:
        """Which section (base or group) a direct child belongs to."""
        c = self.elem.find(x.q(child_name))
        if c is not None and c.get("group") and c.get("group") != "None":
            return c.get("group")
        return BASE

    def field(self, path: str, default: str | None = None) -> str | None:
        """Text at a local-name path, e.g. ``PartitionMemoryConfiguration/DesiredMemory``."""
        return x.text(self.elem, path, default)


class Store:
    """All objects, indexed by kind and upper-case UUID, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._by_kind: dict[str, dict[str, Resource]] = {}

    def add(self, res: Resource) -> Resource:
        with self.lock:
            self._by_kind.setdefault(res.kind, {})[res.uuid.upper()] = res
        return res

    def remove(self, res: Resource) -> None:
        with self.lock:
            self._by_kind.get(res.kind, {}).pop(res.uuid.upper(), None)
            for kid in self.children(res):
                self.remove(kid)

    def find(self, kind: str, uuid: str) -> Resource | None:
        with self.lock:
            return self._by_kind.get(kind, {}).get(uuid.upper())

    def get(self, kind: str, uuid: str) -> Resource:
        res = self.find(kind, uuid)
        if res is None:
            raise errors.not_found(kind, uuid)
        return res

    def list(self, kind: str, parent: Resource | None = None) -> list[Resource]:
        with self.lock:
            objs = list(self._by_kind.get(kind, {}).values())
        if parent is not None:
            objs = [o for o in objs if o.parent is parent]
        return sorted(objs, key=lambda o: o.serial)

    def children(self, parent: Resource) -> list[Resource]:
        with self.lock:
            return [
                o for objs in self._by_kind.values() for o in objs.values() if o.parent is parent
            ]

    def kinds(self) -> Iterable[str]:
        with self.lock:
            return list(self._by_kind)
