"""Snapshot's disk access on the management partition: the sysfs path logic
against a directory tree standing in for /sys and /dev, and the emulator
implementation's answers to what the emulator's control endpoint reports."""

from __future__ import annotations

import http.server
import json
import os
import threading
import types

import pytest

from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.powervm.mgmt import MgmtDisk, emulator, sysfs

#: A VDisk UDID as NovaLink reports them (longer than the 32 characters udev keeps).
UDID = "0300c1002c37f1ef8a37e00564af18f9773e.1"
SLOT = 10  # vio bus device 0x3000000a (hex, not 30000010)


class FakeLinux:
    """/sys and /dev of a NovaLink partition: a scan makes the LUN appear, delete removes it."""

    def __init__(self, root, slot=SLOT, appears=True, goes=True, link_udid=UDID[-32:]):
        self.sys = str(root / "sys")
        self.dev = str(root / "dev")
        self.writes: list[tuple[str, str, str]] = []
        self.appears, self.goes, self.link_udid = appears, goes, link_udid
        host = root / "sys/bus/vio/devices" / f"{0x30000000 | slot:x}" / "host3/scsi_host/host3"
        host.mkdir(parents=True)
        (host / "scan").write_text("")
        (root / "dev/disk/by-id").mkdir(parents=True)
        # A partition link of another disk and the disk's own partition must not match.
        (root / "dev/sdz").write_bytes(b"")
        os.symlink("../../sdz", root / "dev/disk/by-id/scsi-other")

    def writefile(self, path, mode, content):
        self.writes.append((os.path.relpath(path, os.path.dirname(self.sys)), mode, content))
        with open(path, mode) as f:
            f.write(content)
        if path.endswith("/scan") and self.appears:
            with open(os.path.join(self.dev, "sdb"), "wb") as f:
                f.write(b"disk bytes")
            by_id = os.path.join(self.dev, "disk/by-id")
            os.symlink("../../sdb", os.path.join(by_id, f"scsi-SAIX_VDASD_{self.link_udid}"))
            os.symlink("../../sdb1", os.path.join(by_id, f"scsi-SAIX_VDASD_{self.link_udid}-part1"))
            os.makedirs(os.path.join(self.sys, "block/sdb/device"))
            open(os.path.join(self.sys, "block/sdb/device/delete"), "w").close()
        if path.endswith("/device/delete") and self.goes:
            # The kernel removes the device a moment later.
            threading.Timer(0.05, self._gone, args=(path,)).start()

    def _gone(self, delete_path):
        block = os.path.dirname(os.path.dirname(delete_path))
        os.remove(delete_path)
        os.rmdir(os.path.dirname(delete_path))
        os.rmdir(block)


def _access(linux, **kwargs):
    kwargs.setdefault("discover_timeout", 1.0)
    kwargs.setdefault("delete_timeout", 1.0)
    return sysfs.SysfsDiskAccess(
        host=None,
        conf=None,
        sys_root=linux.sys,
        dev_root=linux.dev,
        writefile=linux.writefile,
        chown=kwargs.pop("chown", lambda path, uid: None),
        interval=0.01,
        **kwargs,
    )


def _disk(slot=SLOT):
    return MgmtDisk(name="b_0123456789abc", udid=UDID, vios_uuid="v", client_slot=slot)


def test_discover_rescans_the_client_slot_and_finds_the_disk_by_udid(tmp_path):
    linux = FakeLinux(tmp_path)
    path = _access(linux).discover(_disk())
    assert path == os.path.join(linux.dev, "sdb")
    assert linux.writes == [
        ("sys/bus/vio/devices/3000000a/host3/scsi_host/host3/scan", "a", "- - -")
    ]


def test_discover_without_a_scsi_host_for_the_slot_names_the_path(tmp_path):
    linux = FakeLinux(tmp_path, slot=SLOT + 1)
    with pytest.raises(pvm_exc.MgmtDiskError, match="bus/vio/devices/3000000a"):
        _access(linux).discover(_disk())
    assert linux.writes == []


def test_discover_gives_up_after_its_timeout(tmp_path):
    linux = FakeLinux(tmp_path, appears=False)
    with pytest.raises(pvm_exc.MgmtDiskError, match=r"no .*/disk/by-id/\*" + UDID[-32:]):
        _access(linux, discover_timeout=0.1).discover(_disk())


def test_discover_matches_only_the_udids_last_32_characters_at_the_end(tmp_path):
    # A link ending in another UDID's tail (the first 32 characters) is not the disk.
    linux = FakeLinux(tmp_path, link_udid=UDID[:32])
    with pytest.raises(pvm_exc.MgmtDiskError):
        _access(linux, discover_timeout=0.1).discover(_disk())


def test_remove_device_deletes_it_through_sysfs_and_waits_until_gone(tmp_path):
    linux = FakeLinux(tmp_path)
    access = _access(linux)
    disk = _disk()
    disk.path = access.discover(disk)
    access.remove_device(disk)
    assert ("sys/block/sdb/device/delete", "a", "1") in linux.writes
    assert not os.path.exists(os.path.join(linux.sys, "block/sdb"))
    access.remove_device(disk)  # gone already: nothing to do
    assert [w for w in linux.writes if w[2] == "1"] == [("sys/block/sdb/device/delete", "a", "1")]


def test_remove_device_that_stays_is_an_error(tmp_path):
    linux = FakeLinux(tmp_path, goes=False)
    access = _access(linux, delete_timeout=0.1)
    disk = _disk()
    disk.path = access.discover(disk)
    with pytest.raises(pvm_exc.MgmtDiskError, match="block/sdb still exists"):
        access.remove_device(disk)


def test_open_owns_the_device_while_reading(tmp_path, monkeypatch):
    linux = FakeLinux(tmp_path)
    calls = []
    access = _access(linux, chown=lambda path, uid: calls.append((os.path.basename(path), uid)))
    disk = _disk()
    disk.path = access.discover(disk)
    owner = os.stat(disk.path).st_uid
    monkeypatch.setattr(sysfs.os, "getuid", lambda: owner + 1000)
    with access.open(disk) as f:
        assert f.read() == b"disk bytes"
        assert calls == [("sdb", owner + 1000)]
    assert calls == [("sdb", owner + 1000), ("sdb", owner)]


# -- the emulator implementation's refusals -----------------------------------------------


class _Disks(http.server.BaseHTTPRequestHandler):
    records: dict = {}

    def do_GET(self):  # noqa: N802
        body = json.dumps({"disks": self.records}).encode()
        self.send_response(200 if self.path == "/_emulator/disks" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def control():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Disks)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _emulated(host: str, port: int = 1):
    session = types.SimpleNamespace(host=host, dest=f"http://{host}:{port}")
    host_ = types.SimpleNamespace(adapter=types.SimpleNamespace(session=session))
    return emulator.EmulatorDiskAccess(host_, None)


def test_emulated_access_reads_the_file_the_emulator_names(control, tmp_path):
    data = tmp_path / "disk.img"
    data.write_bytes(b"image bytes")
    _Disks.records = {UDID: {"bytes": 11, "sha256": "x", "path": str(data), "copy_of": "y"}}
    access = _emulated("localhost", control.server_address[1])
    disk = _disk()
    disk.path = access.discover(disk)
    with access.open(disk) as f:
        assert f.read() == b"image bytes"


def test_emulated_access_without_kept_data_says_how_to_keep_it(control):
    _Disks.records = {UDID: {"bytes": 11, "sha256": "x", "path": None}}
    with pytest.raises(pvm_exc.MgmtDiskError, match="--keep-disk-data"):
        _emulated("127.0.0.1", control.server_address[1]).discover(_disk())
    _Disks.records = {}
    with pytest.raises(pvm_exc.MgmtDiskError, match=f"no data for UDID {UDID}"):
        _emulated("127.0.0.1", control.server_address[1]).discover(_disk())


def test_emulated_access_refuses_a_remote_novalink():
    with pytest.raises(pvm_exc.ConfigError, match="mgmt_disk_access.*novalink.example.com"):
        _emulated("novalink.example.com").discover(_disk())
