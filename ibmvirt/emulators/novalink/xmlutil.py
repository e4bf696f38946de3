"""XML vocabulary shared by the NovaLink emulator modules.

The PowerVM REST API speaks Atom with payloads in two namespaces ("uom" for
managed objects, "web" for sessions, jobs, files and errors). Everything here
is plain lxml so the server never depends on the client library under test.
"""

from __future__ import annotations

import copy
import datetime
import time
from collections.abc import Iterable

from lxml import etree

ATOM_NS = "http://www.w3.org/2005/Atom"
UOM_NS = "http://www.ibm.com/xmlns/systems/power/firmware/uom/mc/2012_10/"
WEB_NS = "http://www.ibm.com/xmlns/systems/power/firmware/web/mc/2012_10/"
PCM_NS = "http://www.ibm.com/xmlns/systems/power/firmware/pcm/mc/2012_10/"
NS_BY_SERVICE = {"uom": UOM_NS, "web": WEB_NS, "pcm": PCM_NS}
GENERATOR = "IBM Power Systems Management Console"
SCHEMA_VERSION = "V1_0"

# Comments, PIs and DTDs are not part of this API; never resolve entities.
PARSER = etree.XMLParser(
    remove_blank_text=True, remove_comments=True, resolve_entities=False, no_network=True
)


def q(tag: str, ns: str = UOM_NS) -> str:
    """Clark-notation tag name: ``{ns}tag``."""
    return f"{{{ns}}}{tag}"


def local(el: etree._Element) -> str:
    """Local name of an element (no namespace)."""
    return etree.QName(el).localname


def parse(body: bytes | str) -> etree._Element:
    """Parse a request body; raises etree.XMLSyntaxError on garbage."""
    if isinstance(body, str):
        body = body.encode()
    return etree.fromstring(body, PARSER)


def tostring(el: etree._Element) -> bytes:
    """Serialise without an XML declaration.

    pypowervm parses the *decoded text* of Atom responses with lxml, which
    refuses a ``str`` carrying an encoding declaration; real responses have none.
    """
    return etree.tostring(el, encoding="UTF-8")


def now_iso() -> str:
    """Atom timestamp with milliseconds and offset, as the real server writes it."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def now_ms() -> str:
    """Epoch milliseconds as text (AtomCreated, job times, event ids)."""
    return str(int(time.time() * 1000))


def child(parent: etree._Element, tag: str, ns: str = UOM_NS) -> etree._Element | None:
    """Direct child by local name in the given namespace."""
    return parent.find(q(tag, ns))


def text(parent: etree._Element, path: str, default: str | None = None) -> str | None:
    """Text of a child path written with local names ("A/B"), or default."""
    el = parent.find("/".join(q(p) for p in path.split("/")))
    if el is None or el.text is None:
        return default
    return el.text


def find_path(parent: etree._Element, path: str) -> etree._Element | None:
    """Element at a local-name path ("A/B") in the uom namespace."""
    return parent.find("/".join(q(p) for p in path.split("/")))


def sub(
    parent: etree._Element,
    tag: str,
    value: str | None = None,
    ns: str = UOM_NS,
    kb: str | None = "ROR",
    **attrib: str,
) -> etree._Element:
    """Append a child element with optional text and server-side kb attribute."""
    attrs = dict(attrib)
    if kb:
        attrs = {"kb": kb, "kxe": "false", **attrs}
    el = etree.SubElement(parent, q(tag, ns), attrib=attrs)
    if value is not None:
        el.text = value
    return el


def container(tag: str, ns: str = UOM_NS, nsmap_default: bool = True) -> etree._Element:
    """Top-level schema object (with Metadata/Atom) as the server emits it."""
    el = etree.Element(
        q(tag, ns), nsmap={None: ns} if nsmap_default else None, schemaVersion=SCHEMA_VERSION
    )
    md = etree.SubElement(el, q("Metadata", ns))
    etree.SubElement(md, q("Atom", ns))
    return el


def sub_container(parent: etree._Element, tag: str, ns: str = UOM_NS, **attrib: str):
    """Nested schema object (carries its own Metadata/Atom)."""
    el = etree.SubElement(parent, q(tag, ns), attrib={"schemaVersion": SCHEMA_VERSION, **attrib})
    md = etree.SubElement(el, q("Metadata", ns))
    etree.SubElement(md, q("Atom", ns))
    return el


def set_atom(el: etree._Element, uuid: str, created: str | None = None) -> None:
    """Fill Metadata/Atom with the server-assigned AtomID and AtomCreated."""
    md = el.find(q("Metadata"))
    if md is None:
        md = etree.Element(q("Metadata"))
        el.insert(0, md)
    atom = md.find(q("Atom"))
    if atom is None:
        atom = etree.SubElement(md, q("Atom"))
    for c in list(atom):
        atom.remove(c)
    etree.SubElement(atom, q("AtomID")).text = uuid
    etree.SubElement(atom, q("AtomCreated")).text = created or now_ms()


def atom_id(el: etree._Element) -> str | None:
    """AtomID of an object element, if present."""
    return text(el, "Metadata/Atom/AtomID")


def deep(el: etree._Element) -> etree._Element:
    """Deep copy (lxml elements are mutable and must not be shared)."""
    return copy.deepcopy(el)


def related(tag: str, href: str, kb: str = "CUD") -> etree._Element:
    """A link element (href + rel="related"), as references are written; not
    yet placed, for callers that insert it in schema order."""
    return etree.Element(q(tag), attrib={"kb": kb, "kxe": "false", "href": href, "rel": "related"})


def link(parent: etree._Element, tag: str, href: str, kb: str = "CUD") -> etree._Element:
    """Child link element appended to ``parent``."""
    el = related(tag, href, kb)
    parent.append(el)
    return el


def children_named(parent: etree._Element | None, tag: str) -> list[etree._Element]:
    """All direct children with the given local name (uom namespace)."""
    if parent is None:
        return []
    return parent.findall(q(tag))


def remove_all(parent: etree._Element, tags: Iterable[str]) -> None:
    """Remove every direct child with one of the given local names."""
    wanted = set(tags)
    for c in list(parent):
        if isinstance(c.tag, str) and local(c) in wanted:
            parent.remove(c)
