"""Atom feed and entry rendering, byte-for-byte in the shape pypowervm parses.

Shape taken from the captured real responses: entries carry id, title,
published, a SELF link (with the ``?group=`` the client asked for, which
pypowervm reuses for its update), author, an ``etag:etag`` element and the
payload inside ``content``; feeds add id/updated/SELF/generator.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable, Iterable

from lxml import etree

from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.store import Groups, Resource, groups_query

CONTENT_TYPE = "application/vnd.ibm.powervm.{svc}+xml; type={type}"


def _with_group(href: str, groups: Groups, show: bool) -> str:
    return f"{href}?group={groups_query(groups)}" if show else href


def entry(
    res: Resource, base: str, groups: Groups, show_group: bool = True, title: str | None = None
) -> etree._Element:
    """Atom entry for one object, restricted to ``groups``."""
    e = etree.Element(x.q("entry", x.ATOM_NS), nsmap={None: x.ATOM_NS})
    etree.SubElement(e, x.q("id", x.ATOM_NS)).text = res.uuid
    etree.SubElement(e, x.q("title", x.ATOM_NS)).text = title or res.kind
    etree.SubElement(e, x.q("published", x.ATOM_NS)).text = res.published
    etree.SubElement(
        e, x.q("link", x.ATOM_NS), rel="SELF", href=_with_group(base + res.path, groups, show_group)
    )
    author = etree.SubElement(e, x.q("author", x.ATOM_NS))
    etree.SubElement(author, x.q("name", x.ATOM_NS)).text = x.GENERATOR
    tag = etree.SubElement(e, x.q("etag", x.UOM_NS), nsmap={"etag": x.UOM_NS})
    tag.text = res.etag(groups)
    content = etree.SubElement(
        e,
        x.q("content", x.ATOM_NS),
        type=CONTENT_TYPE.format(svc="uom", type=title or res.kind),
    )
    content.append(res.view(groups))
    return e


def feed(
    self_href: str, entries: Iterable[etree._Element], feed_id: str | None = None
) -> etree._Element:
    """Atom feed wrapping already-rendered entries."""
    f = etree.Element(x.q("feed", x.ATOM_NS), nsmap={None: x.ATOM_NS})
    etree.SubElement(f, x.q("id", x.ATOM_NS)).text = feed_id or str(
        uuidlib.uuid5(uuidlib.NAMESPACE_URL, self_href.split("?")[0])
    )
    etree.SubElement(f, x.q("updated", x.ATOM_NS)).text = x.now_iso()
    etree.SubElement(f, x.q("link", x.ATOM_NS), rel="SELF", href=self_href)
    etree.SubElement(f, x.q("generator", x.ATOM_NS)).text = x.GENERATOR
    for en in entries:
        f.append(en)
    return f


def web_entry(
    tag: str,
    build: Callable[[etree._Element], None],
    self_href: str | None = None,
    entry_id: str | None = None,
    schema_version: str = "V1_0",
) -> etree._Element:
    """Atom entry wrapping a ``web`` namespace object (Job*, File, HttpErrorResponse)."""
    e = etree.Element(x.q("entry", x.ATOM_NS), nsmap={None: x.ATOM_NS})
    etree.SubElement(e, x.q("id", x.ATOM_NS)).text = entry_id or str(uuidlib.uuid4())
    etree.SubElement(e, x.q("title", x.ATOM_NS)).text = tag
    etree.SubElement(e, x.q("published", x.ATOM_NS)).text = x.now_iso()
    if self_href:
        etree.SubElement(e, x.q("link", x.ATOM_NS), rel="SELF", href=self_href)
    author = etree.SubElement(e, x.q("author", x.ATOM_NS))
    etree.SubElement(author, x.q("name", x.ATOM_NS)).text = x.GENERATOR
    content = etree.SubElement(
        e, x.q("content", x.ATOM_NS), type=CONTENT_TYPE.format(svc="web", type=tag)
    )
    root = etree.SubElement(
        content, x.q(tag, x.WEB_NS), nsmap={None: x.WEB_NS}, schemaVersion=schema_version
    )
    md = etree.SubElement(root, x.q("Metadata", x.WEB_NS))
    etree.SubElement(md, x.q("Atom", x.WEB_NS))
    build(root)
    return e


def error_entry(status: int, uri: str, reason: str, message: str) -> etree._Element:
    """HttpErrorResponse entry; pypowervm exposes Message as her_wrap.message."""

    def build(root: etree._Element) -> None:
        x.sub(root, "HTTPStatus", str(status), ns=x.WEB_NS)
        x.sub(root, "RequestURI", uri, ns=x.WEB_NS)
        x.sub(root, "ReasonCode", reason, ns=x.WEB_NS)
        x.sub(root, "Message", message, ns=x.WEB_NS, kb="ROO")

    return web_entry("HttpErrorResponse", build, schema_version="V1_2_0")
