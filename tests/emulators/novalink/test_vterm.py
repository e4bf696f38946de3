"""Partition terminals: what the emulated OS writes at power on, shutdown and
a dump restart, kept (bounded) on the control endpoint; the dump restart
reached through pypowervm's power task."""

from __future__ import annotations

import json
import socket
import struct
import urllib.error
import urllib.request

import pypowervm.exceptions as pvm_exc
import pytest
from pypowervm.tasks import power as pvm_power
from pypowervm.tasks import power_opts as pvm_popts

from ibmvirt.emulators.novalink.state import vterm

from .test_lpar import build

JSON = {"Content-Type": "application/json"}


def _output(srv, lpar_uuid):
    with urllib.request.urlopen(f"{srv.url}/_emulator/vterm?lpar={lpar_uuid}") as resp:
        return json.loads(resp.read())


def _write(srv, lpar_uuid, text):
    body = json.dumps({"lpar": lpar_uuid, "text": text}).encode()
    req = urllib.request.Request(
        f"{srv.url}/_emulator/vterm/write", data=body, method="POST", headers=JSON
    )
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())


def _dump_restart(lpar):
    opts = pvm_popts.PowerOffOpts().operation(pvm_popts.PowerOffOperation.DUMPRESTART)
    pvm_power.PowerOp.stop(lpar, opts=opts)


def test_the_terminal_shows_boot_and_shutdown(emulator, adapter, host):
    lpar = build(adapter, host).create(parent=host)
    assert _output(emulator, lpar.uuid)["output"] == ""  # never started: nothing written
    pvm_power.PowerOp.start(lpar)
    text = _output(emulator, lpar.uuid)["output"]
    assert "partition vm1" in text and "Linux version" in text
    assert text.endswith("vm1 login: ")
    pvm_power.PowerOp.stop(lpar, opts=pvm_popts.PowerOffOpts().vsp_hard())
    assert _output(emulator, lpar.uuid)["output"].endswith("reboot: Power down\r\n")


def test_the_scrollback_keeps_the_newest_64_kib(emulator, adapter, host):
    lpar = build(adapter, host).create(parent=host)
    _write(emulator, lpar.uuid, "a" * (vterm.SCROLLBACK - 1))
    assert _output(emulator, lpar.uuid)["bytes"] == vterm.SCROLLBACK - 1
    _write(emulator, lpar.uuid, "bc")  # one byte over: the oldest byte drops out
    out = _output(emulator, lpar.uuid)
    assert out["bytes"] == vterm.SCROLLBACK
    assert out["output"].endswith("abc") and out["output"].count("a") == vterm.SCROLLBACK - 2


def test_an_unknown_partition_is_named_in_the_refusal(emulator):
    with pytest.raises(urllib.error.HTTPError) as exc:
        _output(emulator, "0000")
    assert exc.value.code == 400
    assert "no partition '0000'" in json.loads(exc.value.read())["error"]


def test_a_dump_restart_dumps_and_the_partition_runs_again(emulator, adapter, host):
    lpar = build(adapter, host).create(parent=host)
    pvm_power.PowerOp.start(lpar)
    free_before = host.refresh().memory_free
    _dump_restart(lpar.refresh())
    text = _output(emulator, lpar.uuid)["output"]
    assert "sysrq: Trigger a crash" in text and "kdump" in text
    assert text.endswith("vm1 login: ")  # booted again
    assert lpar.refresh().state == "running"
    assert host.refresh().memory_free == free_before  # its memory stayed allocated


def test_a_dump_restart_of_a_stopped_partition_is_refused(emulator, adapter, host):
    lpar = build(adapter, host).create(parent=host)
    with pytest.raises(pvm_exc.VMPowerOffFailure) as exc:
        _dump_restart(lpar)
    assert "a dump restart needs a running partition" in str(exc.value)
    assert lpar.refresh().state == "not activated"


def _open_vnc(srv, lpar_uuid, what="vnc"):
    body = json.dumps({"lpar": lpar_uuid}).encode()
    req = urllib.request.Request(
        f"{srv.url}/_emulator/vterm/{what}", data=body, method="POST", headers=JSON
    )
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())


def rfb_handshake(sock) -> dict:
    """A VNC viewer's side of RFB 3.8 with security type None, up to ServerInit."""
    f = sock.makefile("rb")
    assert f.read(12) == b"RFB 003.008\n"
    sock.sendall(b"RFB 003.008\n")
    count = f.read(1)[0]
    types = f.read(count)
    assert 1 in types
    sock.sendall(b"\x01")
    assert struct.unpack(">I", f.read(4))[0] == 0  # SecurityResult OK
    sock.sendall(b"\x01")  # ClientInit, shared
    width, height = struct.unpack(">HH", f.read(4))
    f.read(16)  # pixel format
    name = f.read(struct.unpack(">I", f.read(4))[0]).decode()
    return {"width": width, "height": height, "name": name, "file": f}


def test_a_vnc_viewer_gets_through_the_terminal_handshake(emulator, adapter, host):
    lpar = build(adapter, host).create(parent=host)
    port = _open_vnc(emulator, lpar.uuid)["port"]
    assert _open_vnc(emulator, lpar.uuid)["port"] == port  # one server per partition
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        init = rfb_handshake(sock)
        assert (init["width"], init["height"], init["name"]) == (640, 384, "vm1 vterm")
        sock.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, 640, 384))  # full update request
        header = init["file"].read(16)
        assert struct.unpack(">BxHHHHHi", header)[1:] == (1, 0, 0, 640, 384, 0)


def test_the_vnc_terminal_goes_with_the_partition(emulator, adapter, host):
    lpar = build(adapter, host).create(parent=host)
    port = _open_vnc(emulator, lpar.uuid)["port"]
    lpar.delete()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).recv(1)
    other = build(adapter, host, name="vm2").create(parent=host)
    port = _open_vnc(emulator, other.uuid)["port"]
    assert _open_vnc(emulator, other.uuid, "close")["closed"] is True
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).recv(1)
