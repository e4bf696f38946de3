"""Other emulated hosts this one talks to: migration targets and members of
the same Shared Storage Pool cluster.

A peer is registered by its system name (inventory ``migration_peers:
{name: url}`` or ``POST /_emulator/peers {"name", "url"[, "ca_file"]}``).
Emulators reach each other only through their loopback control endpoints,
so two hosts may live in one process or in two.

Messages that follow a local change (a new logical unit, a mapping) are not
sent while the emulator's lock is held: ``notify`` queues them and the
emulator delivers them before it answers the request or finishes the job
that made the change (``Emulator.flush_outbox``). Two hosts changing at the
same moment therefore never wait on each other's locks, and a client that
got its answer can rely on the peers already knowing.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ibmvirt.emulators.novalink.emulator import Emulator

LOG = logging.getLogger(__name__)


class PeerError(Exception):
    """A peer refused a message or could not be reached."""


def all_peers(emu: Emulator) -> dict[str, dict[str, str]]:
    return emu.ext.setdefault("peers", {})


def find(emu: Emulator, name: str) -> dict[str, str] | None:
    return all_peers(emu).get(name)


# Called after a peer was added: fn(emulator, name, peer) (for example to
# exchange the SSP's logical units with it).
def on_added(emu: Emulator, hook: Callable[[Emulator, str, dict[str, str]], None]) -> None:
    emu.ext.setdefault("peer_added_hooks", []).append(hook)


def add(emu: Emulator, body: Any) -> tuple[int, Any]:
    """Register a peer; refuses anything but http(s) on loopback."""
    if not isinstance(body, dict) or not body.get("name") or not body.get("url"):
        raise ValueError("peer needs 'name' (target system name) and 'url' (its base URL)")
    url = str(body["url"]).rstrip("/")
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"peer url {url} must be http:// or https://")
    host = urlsplit(url).hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(
            f"peer url {url} is not a loopback address; emulators only talk over loopback"
        )
    if url.startswith("https") and not body.get("ca_file"):
        raise ValueError("an https peer needs 'ca_file' (its CA certificate) to verify it")
    peer = {"url": url, "ca_file": body.get("ca_file") or ""}
    all_peers(emu)[body["name"]] = peer
    for hook in emu.ext.get("peer_added_hooks", []):
        hook(emu, body["name"], peer)
    return 201, {"peer": {"name": body["name"], "url": url}}


def call(peer: dict[str, str], sub: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST ``payload`` to the peer's control route ``sub``; its JSON answer."""
    req = urllib.request.Request(  # noqa: S310 - add() allows only http(s) on loopback
        f"{peer['url']}/_emulator{sub}",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    ctx = ssl.create_default_context(cafile=peer["ca_file"]) if peer["ca_file"] else None
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as resp:  # noqa: S310
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            msg = json.loads(exc.read()).get("error", str(exc))
        except ValueError:
            msg = str(exc)
        raise PeerError(msg) from exc
    except OSError as exc:
        raise PeerError(f"cannot reach the emulator at {peer['url']}: {exc}") from exc


def notify(
    emu: Emulator,
    peer: dict[str, str],
    sub: str,
    payload: dict[str, Any],
    on_reply: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Queue a message for delivery once the current request or job is done
    with the emulator's lock. A peer that is down is logged, not fatal: the
    local change stands, as on a cluster with a node offline."""

    def deliver() -> None:
        try:
            reply = call(peer, sub, payload)
        except PeerError as exc:
            LOG.warning("Peer %s did not take %s: %s", peer["url"], sub, exc)
            return
        if on_reply is not None:
            with emu.lock:
                on_reply(reply)

    emu.defer(deliver)
