"""Access to the real REST responses captured in the pypowervm wheel.

pypowervm ships ~80 responses recorded from real HMC and NovaLink servers
(``pypowervm/tests/data/*.txt``). The emulator seeds object templates and learns
the schema's element order from them. It reads them as *data* at run time: it
never imports pypowervm code, because the client library is the thing under test.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import re

from lxml import etree

from ibmvirt.emulators.novalink import xmlutil as x


class CaptureUnavailable(RuntimeError):
    """The pypowervm wheel (and so its captured responses) is not installed."""


@functools.cache
def data_dir() -> str:
    """Directory of the captured responses; found without importing pypowervm."""
    spec = importlib.util.find_spec("pypowervm")
    if spec is None or not spec.submodule_search_locations:
        raise CaptureUnavailable(
            "pypowervm is not installed; the NovaLink emulator seeds its objects from "
            "the responses captured in pypowervm/tests/data. Install pypowervm==1.1.27."
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "tests", "data")
    if not os.path.isdir(path):
        raise CaptureUnavailable(f"{path} is missing; reinstall pypowervm==1.1.27")
    return path


def names() -> list[str]:
    """File names of all captured responses."""
    return sorted(f for f in os.listdir(data_dir()) if f.endswith(".txt"))


@functools.cache
def _sections(name: str) -> dict[str, str]:
    sections: dict[str, str] = {}
    cur: str | None = None
    buf: list[str] = []
    with open(os.path.join(data_dir(), name), encoding="utf-8") as f:
        for line in f:
            if cur is None:
                if line.startswith("#") or not line.strip():
                    continue
                cur = line.strip().rstrip("{")
                buf = []
            elif line.startswith("END OF SECTION}"):
                sections[cur] = "".join(buf)
                cur = None
            else:
                buf.append(line)
    return sections


def info(name: str) -> dict:
    """The INFO section (path, status, comment) of a capture."""
    return ast.literal_eval(_sections(name)["INFO"])


@functools.cache
def _root(name: str) -> etree._Element | None:
    body = _sections(name).get("BODY", "").strip()
    if not body.startswith("<"):
        return None
    try:
        return x.parse(body)
    except etree.XMLSyntaxError:
        return None


def root(name: str) -> etree._Element | None:
    """Parsed Atom root (feed or entry) of a capture, or None for non-XML bodies."""
    r = _root(name)
    return None if r is None else x.deep(r)


def body_text(name: str) -> str:
    """Raw BODY section (for JSON captures such as PCM metrics)."""
    return _sections(name).get("BODY", "")


def contents(name: str) -> list[etree._Element]:
    """Content payload elements of every entry of a capture (fresh copies)."""
    r = root(name)
    if r is None:
        return []
    entries = [r] if r.tag == x.q("entry", x.ATOM_NS) else r.findall(x.q("entry", x.ATOM_NS))
    out = []
    for e in entries:
        c = e.find(x.q("content", x.ATOM_NS))
        if c is not None and len(c):
            out.append(c[0])
    return out


_HREF_RE = re.compile(r"^https?://[^/]+/rest/api/")


def rebase(el: etree._Element, base: str) -> etree._Element:
    """Point every captured href at the emulator (``base`` = scheme://host:port)."""
    for node in el.iter():
        href = node.get("href") if isinstance(node.tag, str) else None
        if href and _HREF_RE.match(href):
            node.set("href", _HREF_RE.sub(base + "/rest/api/", href))
    return el


def all_contents() -> list[etree._Element]:
    """Every captured payload element; used for schema learning."""
    out: list[etree._Element] = []
    for n in names():
        r = _root(n)
        if r is None:
            continue
        for c in r.iter(x.q("content", x.ATOM_NS)):
            out.extend(list(c))
    return out
