"""HTTP front end: maps PowerVM REST API requests onto the Emulator.

A stdlib ThreadingHTTPServer (threads are needed for the event long poll).
``NovaLinkServer`` runs it in a background thread, which serves both the
console script and the in-process test fixture over real HTTP(S).
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from lxml import etree

from ibmvirt.emulators import faults, httpserver
from ibmvirt.emulators.novalink import atom, errors
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.control import DropConnection as _Drop
from ibmvirt.emulators.novalink.emulator import Emulator
from ibmvirt.emulators.novalink.store import Resource, parse_groups

LOG = logging.getLogger(__name__)
ATOM_TYPE = "application/atom+xml"
_API = re.compile(r"^/rest/api/(uom|web|pcm)(?:/(.*?))?/?$")


class _Server(httpserver.TrackingHTTPServer):
    """Cuts idle keep-alive clients on stop(); TLS handshakes per connection."""


class Handler(httpserver.TrackingHandler):
    """One request. ``emu`` and ``control`` are set on the bound subclass."""

    server_version = "ibmvirt-novalink-emulator"
    emu: Emulator
    control: Any = None  # ibmvirt.emulators.novalink.control.Control

    # ---- plumbing ---------------------------------------------------------------
    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _body(self) -> bytes:
        return b"".join(self.read_stream(limit=httpserver.MAX_BODY))

    def read_stream(self, chunk: int = 1 << 20, limit: int | None = None) -> Iterator[bytes]:
        """The request body, streamed (Content-Length or chunked encoding).

        ``limit``: most bytes accepted (None for uploads, which the target
        device's capacity bounds); more, a negative or malformed size, or a body
        that ends early is a 413/400 and closes the connection.
        """
        if self._consumed:
            return
        self._consumed = True
        try:
            yield from httpserver.body_chunks(self.rfile, self.headers, limit, chunk)
        except httpserver.BodyError as exc:
            self.close_connection = True
            raise errors.RestError(exc.status, exc.message) from None

    def _skip_body(self) -> None:
        """After a refusal: drop a small unread body, or close instead of reading it."""
        if not self._consumed:
            self._consumed = True
            if not httpserver.drain(self.rfile, self.headers):
                self.close_connection = True

    def send(
        self,
        status: int,
        body: bytes = b"",
        ctype: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        # What this request changed reaches peer emulators before its client hears back.
        self.emu.flush_outbox()
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def send_xml(self, status: int, el: etree._Element, etag: str | None = None) -> None:
        self.send(status, x.tostring(el), ATOM_TYPE, {"ETag": etag} if etag else None)

    def send_error_entry(self, exc: errors.RestError) -> None:
        entry = atom.error_entry(exc.status, self.path.split("?")[0], exc.reason, exc.message)
        self.send(exc.status, x.tostring(entry), ATOM_TYPE, exc.headers)

    def _handle(self, verb: str) -> None:
        self._consumed = False
        self._recorded = True  # control requests are not logged
        self._verb = verb
        parts = urlsplit(self.path)
        # Split before unquoting: a search value may contain an encoded "/".
        path = parts.path
        streamed = path.startswith("/rest/api/web/File/contents/")
        has_body = verb in ("PUT", "POST") and not streamed
        qs = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        ctl = self.control
        if ctl is not None and path.startswith(ctl.prefix.rstrip("/")):
            try:
                # Checked on the headers first: a refused client's body is not read.
                refusal = faults.control_refusal(self.client_address[0], verb, self.headers)
                if refusal is not None:
                    raise errors.RestError(*refusal)
                return ctl.handle(self, verb, self.path, self._body() if has_body else b"")
            except errors.RestError as exc:
                self._skip_body()
                return self.send_error_entry(exc)
        status = 500
        self._recorded = False
        try:
            m = _API.match(path)
            if not m:
                raise errors.RestError(404, f"{path} is not a PowerVM REST API path")
            self.emu.counted()
            if ctl is not None:
                ctl.before_request(verb, self.path)
            elif self.emu.config.request_delay:
                time.sleep(self.emu.config.request_delay)
            service, rest = m.group(1), m.group(2) or ""
            if service == "web" and rest == "Logon":
                return self._logon(verb, self._body() if has_body else b"")
            # The session first: a client without one never makes us read a body.
            self.emu.sessions.check(self.headers.get("X-API-Session"))
            body = self._body() if has_body else b""
            segs = [unquote(s) for s in rest.split("/") if s]
            if service == "web":
                return self.route_web(verb, segs, qs, body)
            if service == "pcm":
                return self.route_pcm(verb, segs, qs, body)
            return self.route_uom(verb, segs, qs, body, path)
        except errors.RestError as exc:
            self._skip_body()
            self.send_error_entry(exc)
        except _Drop:
            status = 0
            self.close_connection = True
        except Exception as exc:  # report emulator bugs to the client as 500s
            LOG.exception("NovaLink emulator failed on %s %s", verb, path)
            self.send_error_entry(errors.RestError(500, f"Internal emulator error: {exc!r}"))
        finally:
            if ctl is not None and not self._recorded:
                ctl.record(verb, self.path, getattr(self, "_status", status))

    def send_response(self, code: int, message: str | None = None) -> None:
        # Logged before the client can read the answer: a client counting the
        # log right after its call must see the request (no race).
        self._status = code
        ctl = self.control
        if ctl is not None and not getattr(self, "_recorded", True):
            ctl.record(self._verb, self.path, code)
            self._recorded = True
        super().send_response(code, message)

    # ---- web ----------------------------------------------------------------------
    def _logon(self, verb: str, body: bytes) -> None:
        if verb == "DELETE":
            self.emu.sessions.logoff(self.headers.get("X-API-Session"))
            return self.send(204)
        if verb != "PUT":
            raise errors.RestError(405, "Use PUT to log on and DELETE to log off")
        doc = self.emu.sessions.logon(body, local=faults.is_loopback(self.client_address[0]))
        self.send(
            200,
            doc,
            "application/vnd.ibm.powervm.web+xml; type=LogonResponse",
            {"X-MC-Type": "PVM"},
        )

    def route_web(self, verb: str, segs: list[str], qs: dict[str, str], body: bytes) -> None:
        handler = self.emu.web_routes.get(segs[0]) if segs else None
        if handler is None:
            raise errors.RestError(404, f"web/{'/'.join(segs)} is not served")
        handler(self, verb, segs, qs, body)

    def route_pcm(self, verb: str, segs: list[str], qs: dict[str, str], body: bytes) -> None:
        handler = self.emu.web_routes.get("__pcm__")
        if handler is None:
            raise errors.RestError(404, "Performance monitoring is not served by this emulator")
        handler(self, verb, segs, qs, body)

    # ---- uom ----------------------------------------------------------------------
    def route_uom(
        self, verb: str, segs: list[str], qs: dict[str, str], body: bytes, path: str
    ) -> None:
        emu = self.emu
        if not segs:
            raise errors.RestError(404, "No object type in path")
        if segs[0] == "jobs":
            return self._jobs(verb, segs)
        if segs[0] == "Event":
            return self._events(verb, qs, body)
        groups = parse_groups(qs.get("group"))
        show_group = "group" in qs
        parent: Resource | None = None
        i = 0
        while True:
            kind = segs[i]
            emu.kind(kind)
            nxt = segs[i + 1] if i + 1 < len(segs) else None
            if nxt is None or nxt == "search":
                return self._collection(
                    verb, kind, parent, segs[i + 2 :] if nxt else [], groups, show_group, body, path
                )
            if nxt == "quick":
                if verb != "GET" or segs[i + 2 :] != ["All"]:
                    raise errors.RestError(404, f"A {kind} collection offers only GET quick/All")
                return self.send(200, emu.quick_all(kind, parent), "application/json")
            if nxt == "do":
                # Collection-level jobs (Cluster/do/Create), and the templates
                # pypowervm reads there for jobs it then runs on one object.
                if parent is not None or len(segs) != i + 3:
                    raise errors.RestError(404, f"{kind} has no collection-level jobs here")
                return self._job_request(verb, kind, None, segs[i + 2], body, path)
            res = emu.store.get(kind, nxt)
            if parent is not None and res.parent is not parent:
                raise errors.not_found(f"{kind} under {parent.kind} {parent.uuid}", nxt)
            rest = segs[i + 2 :]
            if not rest:
                return self._object(verb, res, groups, show_group, body)
            if rest[0] == "quick" and verb == "GET":
                return self.send(
                    200, emu.quick(res, rest[1] if len(rest) > 1 else None), "application/json"
                )
            if rest[0] == "do" and len(rest) == 2:
                return self._job_request(verb, res.kind, res, rest[1], body, path)
            parent, i = res, i + 2

    def _collection(
        self,
        verb: str,
        kind: str,
        parent: Resource | None,
        search: list[str],
        groups: Any,
        show_group: bool,
        body: bytes,
        path: str,
    ) -> None:
        emu = self.emu
        if verb == "PUT" and not search:
            res = emu.create(kind, parent, body)
            return self.send_xml(
                200, atom.entry(res, emu.base, groups, show_group), res.etag(groups)
            )
        if verb != "GET":
            raise errors.RestError(405, f"{verb} is not allowed on a {kind} feed")
        with emu.lock:
            for hook in emu.kind("ManagedSystem").before_read:
                hook(emu)
            lister = emu.kind(kind).lister
            if lister is not None and parent is not None:
                objs = lister(emu, parent)
            else:
                objs = emu.store.list(kind, parent)
            if not emu.kind(kind).rootable and parent is None:
                raise errors.RestError(404, f"{kind} is only reachable under its parent")
            if search:
                objs = emu.search(objs, "/".join(search))
            if not objs:
                return self.send(204)
            for o in objs:
                emu.before_view(o)
            entries = [atom.entry(o, emu.base, groups, show_group) for o in objs]
            tag = str(sum(int(o.etag(groups)) for o in objs) & 0x7FFFFFFF)
        if self.headers.get("If-None-Match") == tag:
            return self.send(304)
        href = emu.base + self.path
        self.send_xml(200, atom.feed(href, entries), tag)

    def _object(self, verb: str, res: Resource, groups: Any, show_group: bool, body: bytes) -> None:
        emu = self.emu
        if verb == "GET":
            with emu.lock:
                emu.before_view(res)
                tag = res.etag(groups)
                if self.headers.get("If-None-Match") == tag:
                    return self.send(304)
                el = atom.entry(res, emu.base, groups, show_group)
            return self.send_xml(200, el, tag)
        if verb == "POST":
            emu.update(res, body, groups, self.headers.get("If-Match"))
            with emu.lock:
                el = atom.entry(res, emu.base, groups, show_group)
                tag = res.etag(groups)
            return self.send_xml(200, el, tag)
        if verb == "DELETE":
            emu.delete(res, self.headers.get("If-Match"), groups)
            return self.send(204)
        raise errors.RestError(405, f"{verb} is not allowed on {res.kind}")

    def _job_request(
        self, verb: str, kind: str, res: Resource | None, op: str, body: bytes, path: str
    ) -> None:
        emu = self.emu
        if not emu.jobs.has(kind, op):
            raise errors.RestError(404, f"{kind} has no job operation {op}", errors.UNSUPPORTED)
        if verb == "GET":
            return self.send_xml(200, emu.jobs.template(kind, op))
        if verb == "PUT":
            if res is None and not emu.jobs.collection_level(kind, op):
                raise errors.RestError(
                    404, f"{kind} job {op} runs on one {kind}: PUT {kind}/{{uuid}}/do/{op}"
                )
            job = emu.jobs.submit(kind, op, res, body, path.split("/rest/api/uom/", 1)[-1])
            return self.send_xml(200, emu.jobs.response(job, emu.base))
        raise errors.RestError(405, f"{verb} is not allowed on a job request")

    def _jobs(self, verb: str, segs: list[str]) -> None:
        emu = self.emu
        if len(segs) < 2:
            raise errors.RestError(404, "Job id missing")
        if len(segs) == 3 and segs[2] == "cancel" and verb in ("PUT", "POST"):
            emu.jobs.cancel(segs[1])
            return self.send(200)
        if verb == "GET":
            return self.send_xml(200, emu.jobs.response(emu.jobs.get(segs[1]), emu.base))
        if verb == "DELETE":
            emu.jobs.delete(segs[1])
            return self.send(204)
        raise errors.RestError(405, f"{verb} is not allowed on a job")

    def _event_entry(self, ev: Any) -> etree._Element:
        return _event_entry_impl(self.emu.base, ev)

    def _events(self, verb: str, qs: dict[str, str], body: bytes) -> None:
        emu = self.emu
        if verb == "PUT":
            try:
                el = x.parse(body)
            except etree.XMLSyntaxError as exc:
                raise errors.bad_request(f"Event payload is not well-formed: {exc}") from exc
            ev = emu.events.publish(
                "CUSTOM_CLIENT_EVENT",
                el.findtext(x.q("EventData")) or "",
                el.findtext(x.q("EventDetail")) or "",
            )
            return self.send_xml(200, self._event_entry(ev))
        if verb != "GET":
            raise errors.RestError(405, f"{verb} is not allowed on Event")
        appid = qs.get("QUEUE_APPLICATIONID") or self.headers.get("X-API-Session", "")[:16]
        evs = emu.events.take(appid)
        if not evs:
            return self.send(204)
        entries = [self._event_entry(ev) for ev in evs]
        self.send_xml(200, atom.feed(f"{emu.base}/rest/api/uom/Event?group=None", entries))


def _event_entry_impl(base: str, ev: Any) -> etree._Element:
    e = etree.Element(x.q("entry", x.ATOM_NS), nsmap={None: x.ATOM_NS})
    etree.SubElement(e, x.q("id", x.ATOM_NS)).text = ev.uuid
    etree.SubElement(e, x.q("title", x.ATOM_NS)).text = "Event"
    etree.SubElement(e, x.q("published", x.ATOM_NS)).text = x.now_iso()
    etree.SubElement(
        e,
        x.q("link", x.ATOM_NS),
        rel="SELF",
        href=f"{base}/rest/api/uom/Event/{ev.uuid}?group=None",
    )
    author = etree.SubElement(e, x.q("author", x.ATOM_NS))
    etree.SubElement(author, x.q("name", x.ATOM_NS)).text = x.GENERATOR
    c = etree.SubElement(
        e, x.q("content", x.ATOM_NS), type=atom.CONTENT_TYPE.format(svc="uom", type="Event")
    )
    c.append(ev.element())
    return e


class NovaLinkServer:
    """The emulator served over HTTP(S) from a background thread.

    Usage: ``srv = NovaLinkServer(emu); srv.start(); ...; srv.stop()``.
    """

    def __init__(
        self,
        emu: Emulator,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        control: Any = None,
    ) -> None:
        self.emu = emu
        handler = type("BoundHandler", (Handler,), {"emu": emu, "control": control})
        self.httpd = _Server((host, port), handler)
        if ssl_context is not None:
            httpserver.serve_tls(self.httpd, ssl_context)
        self.scheme = "https" if ssl_context is not None else "http"
        self.host = host
        self.port = self.httpd.server_address[1]
        emu.base = f"{self.scheme}://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.emu.base

    def start(self) -> NovaLinkServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="novalink-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        for hook in self.emu.stop_hooks:
            hook()
        self.emu.events.close()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.close_connections()
        self.emu.sessions.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
