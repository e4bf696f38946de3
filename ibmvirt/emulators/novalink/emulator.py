"""The emulator's engine: objects, the REST semantics common to every type
(create, update with ETags and extended groups, delete, search, quick
properties, jobs, events) and the per-type behaviour registered by
``ibmvirt.emulators.novalink.state``.

It knows nothing about HTTP; ``server.py`` maps requests onto it.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from ibmvirt.emulators.novalink import errors, schema
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.auth import Sessions
from ibmvirt.emulators.novalink.events import EventBus
from ibmvirt.emulators.novalink.jobs import JobManager
from ibmvirt.emulators.novalink.store import BASE, Groups, Resource, Store

# Fields the captures mark read-only (HMC era) but NovaLink lets a client set:
# the partition UUID, and the side of a new virtual storage adapter that
# pypowervm's VSCSIBus.bld sends (the bus type checks the value).
CLIENT_SETTABLE = {
    ("LogicalPartition", "PartitionUUID"),
    ("ClientAdapter", "AdapterType"),
    ("ServerAdapter", "AdapterType"),
}


@dataclass
class Kind:
    """Behaviour of one object type.

    Hooks receive the emulator and raise errors.RestError to refuse.
    """

    name: str
    rootable: bool = True
    parents: tuple[str, ...] = ()
    create: Callable[[Emulator, Resource | None, etree._Element], Resource] | None = None
    # (emulator, resource, new element) -> None; validates then applies semantics.
    update: Callable[[Emulator, Resource, etree._Element], None] | None = None
    delete: Callable[[Emulator, Resource], None] | None = None
    quick: Callable[[Emulator, Resource], dict[str, Any]] | None = None
    # Event detail for a plain update (LPAR state changes say PartitionState).
    modify_detail: str = "Other"
    # Fields the real server names in an update's event detail when they change
    # (event_feed.txt: a VIOS mapping change says VirtualSCSIMappings); other
    # changes add "Other".
    detail_fields: tuple[str, ...] = ()
    # Refresh fields computed when read (a partition's Uptime); no ETag change.
    on_read: Callable[[Emulator, Resource], None] | None = None
    # After the new object is stored and announced, under the lock (an NVRAM write).
    after_create: list[Callable[[Emulator, Resource], None]] = field(default_factory=list)
    # Before a child of a deleted parent goes with it: release what it holds.
    on_cascade: Callable[[Emulator, Resource], None] | None = None
    # After the object (and its children) left the store, under the lock.
    after_delete: list[Callable[[Emulator, Resource], None]] = field(default_factory=list)
    # (emulator, parent) -> the collection under a parent, for types the server
    # derives from another object (client adapters from VIOS mappings).
    lister: Callable[[Emulator, Resource], list[Resource]] | None = None
    # Before any collection read, under the lock (registered on ManagedSystem).
    before_read: list[Callable[[Emulator], None]] = field(default_factory=list)
    # (emulator, resource, old element, new element): validate and complete an
    # update before it is applied (VIOS mapping sections).
    update_hooks: list[Callable[[Emulator, Resource, etree._Element, etree._Element], None]] = (
        field(default_factory=list)
    )
    # After an update was applied (also one the server made itself).
    after_update: list[Callable[[Emulator, Resource], None]] = field(default_factory=list)


@dataclass
class Config:
    """Run-time behaviour knobs (all changeable through the control endpoint)."""

    job_delay: float = 0.0
    request_delay: float = 0.0
    event_wait: float = 10.0
    users: dict[str, str] = field(default_factory=lambda: {"neo": "passw0rd"})
    rmc_on_boot: bool = True
    strict_schema: bool = True
    # Keep uploaded disk and ISO data here (one file per device), so a driver's
    # local-disk seam can read what a "mapped disk" holds (snapshot).
    disk_dir: str | None = None


class Emulator:
    """State and REST semantics of one emulated NovaLink host."""

    def __init__(self, config: Config | None = None, token_dir: str | None = None) -> None:
        self.config = config or Config()
        self.base = "http://127.0.0.1"
        self.store = Store()
        self.lock = self.store.lock
        self.events = EventBus(self.config.event_wait)
        self.jobs = JobManager(self.config.job_delay)
        self.sessions = Sessions(self.config.users, token_dir)
        self.kinds: dict[str, Kind] = {}
        self.ms: Resource | None = None
        self.files: dict[str, Any] = {}  # web/File uploads, see state.storage
        # What upload received, by target UDID (or "vopt:<name>"): bytes, sha256
        self.uploads: dict[str, dict[str, Any]] = {}
        # web/<name> and pcm handlers: fn(handler, verb, segs, qs, body)
        self.web_routes: dict[str, Callable[..., None]] = {}
        # Extra control-endpoint routes: "/name" -> fn(json body) -> (status, json)
        self.control_routes: dict[str, Callable[[Any], tuple[int, Any]]] = {}
        #: GET routes of the control endpoint: fn(query) -> (status, JSON body).
        self.control_queries: dict[str, Callable[[dict[str, list[str]]], tuple[int, Any]]] = {}
        #: Called when the server stops (background servers of state modules).
        self.stop_hooks: list[Callable[[], Any]] = []
        # Called after the core objects exist: fn(emulator, inventory)
        self.seed_hooks: list[Callable[[Emulator, dict[str, Any]], None]] = []
        self.request_count = 0
        # Per-module server-side state (counters, monitor preferences, peers).
        self.ext: dict[str, Any] = {}
        self._count_lock = threading.Lock()
        self._outbox = threading.local()
        self.jobs.after_job = self.flush_outbox
        schema.warm()

    # ---- registration ----------------------------------------------------
    def register(self, kind: Kind) -> None:
        self.kinds[kind.name] = kind

    def kind(self, name: str) -> Kind:
        k = self.kinds.get(name)
        if k is None:
            raise errors.RestError(
                404, f"Object type {name} is not served by this emulator", errors.UNSUPPORTED
            )
        return k

    def before_view(self, res: Resource) -> None:
        """Refresh fields a type computes when read (a partition's Uptime)."""
        kind = self.kinds.get(res.kind)
        hook = kind.on_read if kind is not None else None
        if hook is not None:
            hook(self, res)

    def counted(self) -> None:
        with self._count_lock:
            self.request_count += 1

    # ---- work that must wait until the lock is released ----------------------
    def defer(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when this thread's request or job is done with the lock
        (messages to peers, which may call back into this emulator)."""
        pending = getattr(self._outbox, "pending", None)
        if pending is None:
            pending = self._outbox.pending = []
        pending.append(fn)

    def flush_outbox(self) -> None:
        """Run this thread's deferred work; called before a response is sent
        and when a job finishes."""
        pending = getattr(self._outbox, "pending", None)
        while pending:
            pending.pop(0)()

    # ---- events ------------------------------------------------------------
    def event_uri(self, res: Resource) -> str:
        return self.base + res.ms_path

    def publish(self, etype: str, res: Resource, detail: str = "") -> None:
        self.events.publish(etype, self.event_uri(res), detail)

    def changed(self, res: Resource, section: str = BASE, detail: str = "Other") -> None:
        """Record a server-side change and tell event listeners."""
        with self.lock:
            res.bump(section)
        self.publish("MODIFY_URI", res, detail)

    # ---- generic REST semantics -------------------------------------------
    def parse_body(self, body: bytes, kind: str) -> etree._Element:
        """Parse and schema-check a client payload for ``kind``."""
        try:
            el = x.parse(body)
        except etree.XMLSyntaxError as exc:
            raise errors.schema_error(f"{kind} payload is not well-formed XML: {exc}") from exc
        if el.tag != x.q(kind):
            raise errors.schema_error(
                f"Expected a {kind} element in the uom namespace, got {el.tag}"
            )
        if self.config.strict_schema:
            wrong = schema.structure_violation(el)
            if wrong:
                parent, child, problem = wrong
                why = (
                    f"{child} is not an element of {parent}"
                    if problem == "unknown"
                    else f"{child} appears more than once in {parent} but is not a list"
                )
                raise errors.schema_error(f"{kind} payload violates the schema: {why}.")
            bad = schema.order_violation(el)
            if bad:
                parent, early, late = bad
                raise errors.schema_error(
                    f"{kind} payload violates the schema: in {parent}, "
                    f"{early} must come after {late}. Send children in schema order."
                )
        return el

    def check_create_fields(self, kind: str, el: etree._Element) -> None:
        """Refuse server-owned (read-only) fields in a create payload."""
        if not self.config.strict_schema:
            return
        _refuse_read_only(kind, el, kind)

    def check_update_fields(self, res: Resource, el: etree._Element, groups: Groups) -> None:
        """Refuse changes to read-only or create-only fields in an update."""
        if self.config.strict_schema:
            _compare_fields(res.kind, el, res.view(groups), res.kind)

    def create(self, kind_name: str, parent: Resource | None, body: bytes) -> Resource:
        kind = self.kind(kind_name)
        if kind.create is None:
            raise errors.RestError(
                405, f"{kind_name} objects cannot be created by a client", errors.UNSUPPORTED
            )
        if parent is not None and kind.parents and parent.kind not in kind.parents:
            raise errors.RestError(
                405, f"{kind_name} cannot be created under {parent.kind}", errors.UNSUPPORTED
            )
        el = self.parse_body(body, kind_name)
        self.check_create_fields(kind_name, el)
        with self.lock, _bad_values(kind_name):
            res = kind.create(self, parent, el)
            self.store.add(res)
        self.publish("ADD_URI", res)
        if kind.after_create:
            with self.lock:
                for after in kind.after_create:
                    after(self, res)
        return res

    def update(self, res: Resource, body: bytes, groups: Groups, if_match: str | None) -> Resource:
        kind = self.kind(res.kind)
        if kind.update is None:
            raise errors.RestError(405, f"{res.kind} objects are read-only", errors.UNSUPPORTED)
        el = self.parse_body(body, res.kind)
        with self.lock:
            self.check_etag(res, groups, if_match)
            self.check_update_fields(res, el, groups)
            merged = merge_sections(res, el, groups)
            before = _section_digests(res.elem)
            fields_before = _field_digests(res.elem) if kind.detail_fields else {}
            with _bad_values(res.kind):
                kind.update(self, res, merged)
            after = _section_digests(res.elem)
            changed = [s for s in set(before) | set(after) if before.get(s) != after.get(s)]
            for s in changed:
                res.bump(s)
            detail = (
                _modify_detail(kind.detail_fields, fields_before, _field_digests(res.elem))
                if kind.detail_fields
                else kind.modify_detail
            )
            # A type's update hook may name what changed (a port label change).
            detail = res.ext.pop("modify_detail", None) or detail
        if changed:
            self.publish("MODIFY_URI", res, detail)
        return res

    def delete(self, res: Resource, if_match: str | None, groups: Groups) -> None:
        kind = self.kind(res.kind)
        if kind.delete is None:
            raise errors.RestError(
                405, f"{res.kind} objects cannot be deleted by a client", errors.UNSUPPORTED
            )
        with self.lock:
            # A DELETE goes to the bare href: accept the ETag of any view read.
            if if_match is not None and if_match not in (
                res.etag(groups),
                res.etag(frozenset()),
                res.etag(None),
            ):
                self.check_etag(res, groups, if_match)
            kind.delete(self, res)
            # Children go with their parent (a partition's CNAs and vNICs):
            # let their types release what they hold.
            for kid in self.store.children(res):
                kid_kind = self.kinds.get(kid.kind)
                cascade = kid_kind.on_cascade if kid_kind is not None else None
                if cascade is not None:
                    cascade(self, kid)
            self.store.remove(res)
            for after in kind.after_delete:
                after(self, res)
        self.publish("DELETE_URI", res)

    @staticmethod
    def check_etag(res: Resource, groups: Groups, if_match: str | None) -> None:
        if if_match is not None and if_match != res.etag(groups):
            raise errors.RestError(
                412,
                f"{res.kind} {res.uuid} changed since it was read (ETag {if_match} is stale, "
                f"current {res.etag(groups)}); GET it again and retry.",
            )

    def search(self, objs: list[Resource], expr: str) -> list[Resource]:
        """Server-side search: ``(Prop==value)`` / ``(Prop!=value)``, quotes optional."""
        m = re.match(r"^\((\w+)(==|!=)(.*)\)$", expr)
        if not m:
            raise errors.bad_request(
                f"Search expression {expr!r} is not of the form (Property==value)"
            )
        key, op, value = m.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out = []
        for o in objs:
            el = o.elem.find(x.q(key))
            have = None if el is None else (el.text or "")
            if (have == value) == (op == "=="):
                out.append(o)
        return out

    def quick(self, res: Resource, prop: str | None) -> bytes:
        kind = self.kind(res.kind)
        if kind.quick is None:
            raise errors.RestError(404, f"{res.kind} has no quick properties", errors.UNSUPPORTED)
        with self.lock:
            props = kind.quick(self, res)
        if prop is None or prop == "All":
            return json.dumps(props).encode()
        if prop not in props:
            raise errors.RestError(
                404, f"{res.kind} has no quick property {prop}", errors.NOT_FOUND
            )
        return json.dumps(props[prop]).encode()

    def quick_all(self, kind_name: str, parent: Resource | None) -> bytes:
        """Quick properties of every object of a collection in one JSON list,
        each with its UUID (``ManagedSystem/{ms}/LogicalPartition/quick/All``:
        how a client reads every partition's state in one request)."""
        kind = self.kind(kind_name)
        if kind.quick is None:
            raise errors.RestError(404, f"{kind_name} has no quick properties", errors.UNSUPPORTED)
        with self.lock:
            out = [
                {**kind.quick(self, r), "UUID": r.uuid} for r in self.store.list(kind_name, parent)
            ]
        return json.dumps(out).encode()


#: Read-only fields computed when read (``on_read`` hooks) without an ETag change:
#: a client echoing an older value in an update is not changing them.
COMPUTED_ON_READ = frozenset(
    {
        "Uptime",
        "DynamicLogicalPartitionIOCapable",
        "DynamicLogicalPartitionMemoryCapable",
        "DynamicLogicalPartitionProcessorCapable",
    }
)


@contextlib.contextmanager
def _bad_values(kind: str) -> Iterator[None]:
    """A payload value a type hook cannot convert (``int("lots")``) is the
    client's error (400), not the emulator's (500)."""
    try:
        yield
    except ValueError as exc:
        raise errors.bad_request(f"{kind} payload has a value of the wrong type: {exc}") from exc


def _refuse_read_only(parent: str, el: etree._Element, kind: str) -> None:
    """Refuse server-owned fields anywhere in a create payload (not in lists,
    whose items are checked by their own type's rules)."""
    for c in el:
        if not isinstance(c.tag, str):
            continue
        name = x.local(c)
        if (parent, name) in CLIENT_SETTABLE or name == "Metadata":
            continue
        if schema.is_read_only(parent, name) and _non_empty(c):
            raise errors.bad_request(
                f"{parent}.{name} is read-only (set by the server); remove it from the "
                f"{kind} create request.",
                errors.READ_ONLY_FIELD,
            )
        if len(c) and not schema.is_list_item(parent, name):
            _refuse_read_only(name, c, kind)


def _non_empty(el: etree._Element) -> bool:
    return bool((el.text or "").strip()) or len(el) > 0 or bool(el.get("href"))


def _leaf_value(el: etree._Element) -> str:
    return (el.text or "").strip() + "|" + (el.get("href") or "")


def _compare_fields(parent: str, client: etree._Element, stored: etree._Element, kind: str) -> None:
    counts: dict[str, int] = {}
    for c in client:
        if isinstance(c.tag, str):
            counts[x.local(c)] = counts.get(x.local(c), 0) + 1
    for c in client:
        if not isinstance(c.tag, str):
            continue
        name = x.local(c)
        if name == "Metadata" or counts[name] > 1 or schema.is_list_item(parent, name):
            continue  # lists are matched by identity in the type's hook, not here
        if name in COMPUTED_ON_READ:
            continue  # changes without an ETag change: a client's copy is always "stale"
        peers = stored.findall(c.tag)
        if len(peers) != 1:
            if not peers and schema.is_read_only(parent, name) and _non_empty(c):
                if (kind, name) not in CLIENT_SETTABLE and len(c) == 0:
                    raise errors.bad_request(
                        f"{parent}.{name} is read-only and cannot be set by a client",
                        errors.READ_ONLY_FIELD,
                    )
            continue
        s = peers[0]
        if len(c) == 0 and len(s) == 0:
            if _leaf_value(c) != _leaf_value(s):
                if schema.is_read_only(parent, name) and (parent, name) not in CLIENT_SETTABLE:
                    raise errors.bad_request(
                        f"{parent}.{name} is read-only: cannot change it from "
                        f"{(s.text or '').strip()!r} to {(c.text or '').strip()!r}",
                        errors.READ_ONLY_FIELD,
                    )
                if schema.is_create_only(parent, name):
                    raise errors.bad_request(
                        f"{parent}.{name} can only be set at creation: cannot change it from "
                        f"{(s.text or '').strip()!r} to {(c.text or '').strip()!r}",
                        errors.CREATE_ONLY_FIELD,
                    )
        elif len(c) and len(s):
            _compare_fields(name, c, s, kind)


def merge_sections(res: Resource, client: etree._Element, groups: Groups) -> etree._Element:
    """Client payload + the stored parts the client did not see (other groups)
    + server-owned base fields it left out."""
    merged = x.deep(client)
    present = {x.local(c) for c in merged if isinstance(c.tag, str)}
    for c in res.elem:
        if not isinstance(c.tag, str):
            continue
        name = x.local(c)
        g = c.get("group")
        outside = g and g != "None" and groups is not None and g not in groups
        server_owned = (not g or g == "None") and schema.is_read_only(res.kind, name)
        if name not in present and (outside or server_owned):
            schema.insert_ordered(merged, x.deep(c))
    if groups is not None:
        _restore_nested_groups(res.elem, merged, groups)
    return merged


def _path(el: etree._Element, root: etree._Element) -> list[tuple[str, int]]:
    steps = []
    while el is not root and el.getparent() is not None:
        parent = el.getparent()
        same = [c for c in parent if c.tag == el.tag]
        steps.append((el.tag, same.index(el)))
        el = parent
    return list(reversed(steps))


def _follow(root: etree._Element, steps: list[tuple[str, int]]) -> etree._Element | None:
    el = root
    for tag, idx in steps:
        same = [c for c in el if c.tag == tag]
        if idx >= len(same):
            return None
        el = same[idx]
    return el


def _restore_nested_groups(stored: etree._Element, merged: etree._Element, groups: Groups):
    """Nested elements of groups the client did not ask for are kept as stored."""
    for node in stored.iter():
        if node is stored or not isinstance(node.tag, str) or node.getparent() is stored:
            continue
        g = node.get("group")
        if not g or g == "None" or g in (groups or ()):
            continue
        target = _follow(merged, _path(node.getparent(), stored))
        if target is not None and target.find(node.tag) is None:
            schema.insert_ordered(target, x.deep(node))


def _canonical(el: etree._Element) -> bytes:
    """An element's content, blind to namespace prefixes: a client's payload
    and the stored one spell the same namespace with different prefixes."""

    def walk(e: etree._Element) -> tuple[Any, ...]:
        kids = tuple(walk(c) for c in e if isinstance(c.tag, str))
        return (e.tag, sorted(e.attrib.items()), (e.text or "").strip(), kids)

    return repr(walk(el)).encode()


def _field_digests(el: etree._Element) -> dict[str, bytes]:
    return {etree.QName(c).localname: _canonical(c) for c in el if isinstance(c.tag, str)}


def _modify_detail(
    fields: tuple[str, ...], before: dict[str, bytes], after: dict[str, bytes]
) -> str:
    """The changed ``fields`` by name, "Other" for any other change."""
    changed = {f for f in set(before) | set(after) if before.get(f) != after.get(f)}
    named = [f for f in fields if f in changed]
    if changed - set(named) or not named:
        named.append("Other")
    return ",".join(named)


def _section_digests(el: etree._Element) -> dict[str, bytes]:
    out: dict[str, list[bytes]] = {}
    for c in el:
        if not isinstance(c.tag, str):
            continue
        g = c.get("group")
        sec = g if g and g != "None" else BASE
        out.setdefault(sec, []).append(_canonical(c))
    return {k: b"".join(v) for k, v in out.items()}
