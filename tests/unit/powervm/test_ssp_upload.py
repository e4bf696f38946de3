"""Two hosts of one SSP cluster spawning from the same image at once upload it
once: pypowervm's marker LUs coordinate them through the shared pool."""

from __future__ import annotations

import gc
import io
import json
import threading
import types
import urllib.request
import uuid

import pypowervm.adapter as pvm_adpt
import pytest
from oslo_config import fixture as config_fixture
from pypowervm.wrappers import storage as pvm_stor

from ibmvirt.conf import CONF
from ibmvirt.emulators.novalink import app, inventory
from ibmvirt.powervm.disk import ssp, ssp_image
from ibmvirt.powervm.host import Host

IMAGE = types.SimpleNamespace(id=str(uuid.uuid4()), size=3 * 1024 * 1024, disk_format="raw")
DATA = b"\x5a" * IMAGE.size


def _start(tmp_path, name):
    inv = inventory.load("small")
    inv["host"] = dict(inv["host"], name=name, mtms=f"8408-E8E*{len(name)}{name[-1]}00000"[:16])
    tokens = tmp_path / name
    tokens.mkdir(mode=0o700)
    return app.start(inv, token_dir=str(tokens))


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    fix = config_fixture.Config(CONF)
    fix.setUp()
    fix.config(group="powervm", disk_driver="ssp", cluster_name="cluster-1")
    monkeypatch.setattr(ssp, "GlanceImageFile", lambda context, image_id: io.BytesIO(DATA))
    # Short pauses between looks at the pool: the race window stays open.
    monkeypatch.setattr(ssp_image, "PAUSE_MIN", 0.0)
    monkeypatch.setattr(ssp_image, "PAUSE_MAX", 0.3)
    servers = [_start(tmp_path, "pvm-host-a"), _start(tmp_path, "pvm-host-b")]
    body = json.dumps({"name": "pvm-host-b", "url": servers[1].url}).encode()
    urllib.request.urlopen(
        urllib.request.Request(
            servers[0].url + "/_emulator/peers",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
    )
    disks = []
    for srv in servers:
        session = pvm_adpt.Session(
            "127.0.0.1", "neo", "passw0rd", protocol="http", port=srv.port, conn_tries=1
        )
        host = Host(CONF, pvm_adpt.Adapter(session))
        host.check_system()
        disk = ssp.SSPDisk(host, CONF)
        disk.check()
        disks.append(disk)
    yield servers, disks
    for d in disks:
        d.adapter.session._logoff()
    gc.collect()
    for srv in servers:
        srv.stop()
    fix.cleanUp()


@pytest.mark.parametrize("attempt", range(8))  # a race: several tries widen the net
def test_concurrent_spawns_on_two_hosts_upload_the_image_once(cluster, attempt):
    servers, disks = cluster
    instances = [types.SimpleNamespace(uuid=str(uuid.uuid4())) for _ in disks]
    errors = []

    def spawn(disk, instance):
        try:
            disk.create_from_image(None, instance, IMAGE, 1)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=spawn, args=pair) for pair in zip(disks, instances)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for disk in disks:  # both hosts see the same pool
        lus = pvm_stor.LUEnt.get(disk.adapter, parent=disk._tier())
        images = [lu for lu in lus if lu.name == ssp.image_lu_name(IMAGE.id)]
        assert len(images) == 1, [(lu.name, lu.udid, lu.lu_type) for lu in lus]
        assert not [lu for lu in lus if lu.name.startswith("part")], "a marker LU was left"
        boots = {lu.name: lu for lu in lus if lu.name.startswith(ssp.BOOT_PREFIX)}
        assert set(boots) == {ssp.boot_lu_name(i) for i in instances}
        assert {lu.cloned_from_udid for lu in boots.values()} == {images[0].udid}
    uploads = [
        r
        for srv in servers
        for r in srv.httpd.RequestHandlerClass.control.log.records()
        if r.method == "PUT" and "/web/File/contents/" in r.path
    ]
    assert len(uploads) == 1
