"""init_host against the NovaLink emulator: each bad [powervm] setting stops
start-up with an error naming the option; TLS is verified on every request;
no password in the logs; orphan trunk adapters of this host are scrubbed."""

from __future__ import annotations

import copy
import gc

import pytest
import yaml
from nova import exception
from nova.virt import virtapi
from oslo_config import fixture as config_fixture
from pypowervm.tasks import cna as pvm_cna
from pypowervm.tasks import partition as pvm_par

from ibmvirt.conf import CONF
from ibmvirt.emulators.novalink import app, inventory, tlsfiles
from ibmvirt.powervm import driver as pvm_driver
from ibmvirt.sandbox.powervm import NovaLinkView

PASSWORD = "s3cr3t-Pa55w0rd"  # noqa: S105  (the emulator's user, never in a log)


def small(**changes) -> dict:
    """The shipped small inventory, with a user whose password we can look for."""
    with open(inventory.builtin_path("small"), encoding="utf-8") as f:
        inv = yaml.safe_load(f)
    inv = copy.deepcopy(inv)
    inv["users"] = {"neo": PASSWORD}
    for key, value in changes.items():
        inv[key] = value
    return inv


@pytest.fixture
def conf():
    fix = config_fixture.Config(CONF)
    fix.setUp()
    yield fix
    fix.cleanUp()


@pytest.fixture
def novalink(tmp_path):
    """start(inventory, https=False) -> a running emulator; all stopped at the end."""
    servers = []

    def start(inv=None, https=False):
        tokens = tmp_path / f"tokens{len(servers)}"
        tokens.mkdir(mode=0o700)
        ctx = None
        if https:
            ctx, material = tlsfiles.prepare(str(tmp_path / f"tls{len(servers)}"))
        srv = app.start(inv or small(), ssl_context=ctx, token_dir=str(tokens), event_wait=0.3)
        srv.tls = material if https else None
        srv.ssl_context = ctx
        servers.append(srv)
        return srv

    yield start
    gc.collect()  # pypowervm Sessions log off when collected
    for srv in servers:
        srv.stop()


@pytest.fixture
def drivers():
    """new(conf) -> a PowerVMDriver; every one that started is cleaned up."""
    made = []

    def new():
        drv = pvm_driver.PowerVMDriver(virtapi.VirtAPI())
        made.append(drv)
        return drv

    yield new
    for drv in made:
        if drv.host._adapter is not None:
            drv.cleanup_host("compute")


def local(conf, srv, **powervm):
    options = {"novalink_port": srv.port, "vios_ready_timeout": 0}
    options.update(powervm)
    conf.config(group="powervm", **options)


def remote(conf, srv, **powervm):
    options = {
        "novalink_host": "127.0.0.1",
        "novalink_port": srv.port,
        "novalink_username": "neo",
        "novalink_password": PASSWORD,
        "novalink_ca_file": srv.tls.ca_file if srv.tls else None,
        "vios_ready_timeout": 0,
    }
    options.update(powervm)
    conf.config(group="powervm", **options)


def init_fails(drivers) -> str:
    drv = drivers()
    with pytest.raises(exception.NovaException) as info:
        drv.init_host("compute")
    return info.value.format_message()


# -- localdisk: volume_group_name ---------------------------------------------------------


def test_volume_group_auto_detected_when_exactly_one_is_not_rootvg(conf, novalink, drivers):
    """small: vios1 has rootvg and datavg (500 GB), vios2 no volume group."""
    local(conf, novalink(), volume_group_name="")
    drv = drivers()
    drv.init_host("compute")
    assert drv.disk.vg_name == "datavg"
    assert drv.get_available_resource("compute")["local_gb"] == 500


def _with_vgs(vios1_vgs, vios2_vgs):
    inv = small()
    inv["vioses"][0]["volume_groups"] = vios1_vgs
    inv["vioses"][1]["volume_groups"] = vios2_vgs
    return inv


def test_volume_group_name_empty_with_two_candidates(conf, novalink, drivers):
    inv = _with_vgs(
        [
            {"name": "rootvg", "physical_volumes": ["hdisk1"]},
            {"name": "datavg", "physical_volumes": ["hdisk2"]},
        ],
        [{"name": "imagevg", "physical_volumes": ["hdisk1"]}],
    )
    local(conf, novalink(inv), volume_group_name="")
    msg = init_fails(drivers)
    assert msg.startswith("[powervm] volume_group_name: empty")
    assert "vios1/datavg" in msg and "vios2/imagevg" in msg and "name one" in msg


def test_volume_group_name_empty_with_none_but_rootvg(conf, novalink, drivers):
    inv = _with_vgs([{"name": "rootvg", "physical_volumes": ["hdisk1"]}], [])
    local(conf, novalink(inv), volume_group_name="")
    msg = init_fails(drivers)
    assert msg.startswith("[powervm] volume_group_name: empty")
    assert "0 volume groups other than rootvg" in msg


def test_volume_group_name_that_does_not_exist(conf, novalink, drivers):
    local(conf, novalink(), volume_group_name="nosuchvg")
    msg = init_fails(drivers)
    assert msg == "[powervm] volume_group_name: no volume group 'nosuchvg' on this host's VIOSes"


# -- ssp: cluster_name ----------------------------------------------------------------------


def test_cluster_name_found(conf, novalink, drivers):
    local(conf, novalink(), disk_driver="ssp", cluster_name="cluster-1")
    drv = drivers()
    drv.init_host("compute")
    assert drv.get_available_resource("compute")["local_gb"] == 1024


def test_cluster_name_not_found_lists_the_clusters(conf, novalink, drivers):
    local(conf, novalink(), disk_driver="ssp", cluster_name="cluster-9")
    msg = init_fails(drivers)
    assert msg == "[powervm] cluster_name: no cluster named 'cluster-9' (clusters: cluster-1)"


# -- the connection ---------------------------------------------------------------------------


def test_remote_without_password(conf, novalink, drivers):
    remote(conf, novalink(), novalink_password=None, novalink_protocol="http")
    msg = init_fails(drivers)
    assert msg.startswith("[powervm] novalink_username/novalink_password: both are required")


def test_wrong_password_names_the_options(conf, novalink, drivers, caplog):
    caplog.set_level(1)
    srv = novalink()
    remote(conf, srv, novalink_password="not-" + PASSWORD, novalink_protocol="http")
    msg = init_fails(drivers)
    assert (
        "logon refused (HTTP 401); check [powervm] novalink_username and novalink_password" in msg
    )
    assert "not-" + PASSWORD not in caplog.text


def test_nothing_listening_names_host_and_port(conf, novalink, drivers):
    srv = novalink()
    port = srv.port
    srv.stop()
    remote(conf, srv, novalink_port=port, novalink_protocol="http")
    drv = drivers()
    with pytest.raises(exception.HypervisorUnavailable) as info:
        drv.host.connect(conn_tries=1)
    assert f"cannot connect to 127.0.0.1 port {port}; check [powervm] novalink_host" in str(
        info.value
    )


def test_ca_file_that_does_not_exist(conf, novalink, drivers, tmp_path):
    remote(conf, novalink(https=True), novalink_ca_file=str(tmp_path / "missing.pem"))
    msg = init_fails(drivers)
    assert msg.startswith("[powervm] novalink_ca_file: ")
    assert "missing.pem is not a readable file" in msg


@pytest.fixture
def env_ca(monkeypatch):
    """REQUESTS_CA_BUNDLE set, as on many hosts: it must not override [powervm]."""

    def use(path):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", path)
        monkeypatch.setenv("CURL_CA_BUNDLE", path)

    return use


def test_tls_with_the_right_ca_file(conf, novalink, drivers, env_ca, tmp_path):
    srv = novalink(https=True)
    other = tlsfiles.prepare(str(tmp_path / "other"))[1]
    env_ca(other.ca_file)  # a bundle that does not trust the server
    remote(conf, srv)
    drv = drivers()
    drv.init_host("compute")
    assert drv.host.adapter.session.protocol == "https"
    assert drv.list_instances() == []


def test_tls_with_a_wrong_ca_file_fails_naming_the_option(
    conf, novalink, drivers, env_ca, tmp_path
):
    srv = novalink(https=True)
    wrong = tlsfiles.prepare(str(tmp_path / "wrong"))[1]
    env_ca(srv.tls.ca_file)  # the environment would trust it; the option must win
    remote(conf, srv, novalink_ca_file=wrong.ca_file)
    drv = drivers()
    with pytest.raises(exception.HypervisorUnavailable) as info:
        drv.init_host("compute")
    msg = info.value.format_message()
    assert f"not trusted by novalink_ca_file={wrong.ca_file}" in msg
    assert "set [powervm] novalink_ca_file to the CA bundle that signed it" in msg


def test_tls_without_ca_file_uses_the_system_store(conf, novalink, drivers, no_env_ca):
    srv = novalink(https=True)
    remote(conf, srv, novalink_ca_file=None)
    msg = init_fails(drivers)
    assert "not trusted by the system trust store (novalink_ca_file is unset)" in msg


def test_tls_without_ca_file_trusts_what_the_system_trusts(
    conf, novalink, drivers, no_env_ca, monkeypatch
):
    """Unset means the system store (here SSL_CERT_FILE names the emulator's CA),
    not certifi's bundle, which would refuse a site CA."""
    srv = novalink(https=True)
    monkeypatch.setenv("SSL_CERT_FILE", srv.tls.ca_file)
    remote(conf, srv, novalink_ca_file=None)
    drv = drivers()
    drv.init_host("compute")
    assert drv.list_instances() == []


def test_novalink_insecure_works(conf, novalink, drivers, env_ca, tmp_path):
    srv = novalink(https=True)
    env_ca(tlsfiles.prepare(str(tmp_path / "other"))[1].ca_file)
    remote(conf, srv, novalink_ca_file=None, novalink_insecure=True)
    drv = drivers()
    drv.init_host("compute")
    assert drv.list_instances() == []


def _serve_certificate_of_another_ca(srv, tmp_path):
    """The server now presents a certificate no configured CA signed (an
    attacker on the path after the logon)."""
    other = tlsfiles.prepare(str(tmp_path / "attacker"))[1]
    srv.ssl_context.load_cert_chain(other.cert_file, other.key_file)


@pytest.fixture
def no_env_ca(monkeypatch):
    """No CA bundle in the environment: what requests does unless told is nothing."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def test_every_request_is_verified_not_only_the_logon(conf, novalink, drivers, tmp_path, no_env_ca):
    srv = novalink(https=True)
    remote(conf, srv)
    drv = drivers()
    drv.init_host("compute")
    assert drv.list_instances() == []
    _serve_certificate_of_another_ca(srv, tmp_path)
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        drv.get_available_resource("compute")


def test_insecure_keeps_working_when_the_certificate_changes(conf, novalink, drivers, tmp_path):
    """The control case: without verification the same requests go through."""
    srv = novalink(https=True)
    remote(conf, srv, novalink_ca_file=None, novalink_insecure=True)
    drv = drivers()
    drv.init_host("compute")
    _serve_certificate_of_another_ca(srv, tmp_path)
    assert drv.get_available_resource("compute")["local_gb"] == 500


def test_password_and_session_token_never_logged(conf, novalink, drivers, caplog):
    """Everything logged (pypowervm's TRACE included) during a remote logon,
    init_host, reads, a refused request and the logoff."""
    caplog.set_level(1)
    srv = novalink()
    remote(conf, srv, novalink_protocol="http")
    drv = drivers()
    drv.init_host("compute")
    token = drv.host.adapter.session._sessToken
    drv.get_available_resource("compute")
    with pytest.raises(Exception):
        drv.host.adapter.read("LogicalPartition", root_id="0BADC0DE-0000-4000-8000-000000000000")
    drv.cleanup_host("compute")
    assert caplog.records, "nothing was logged: the test would prove nothing"
    # As handlers print them, and as they are kept (a queue formats later).
    for text in (caplog.text, "".join(r.getMessage() for r in caplog.records)):
        assert PASSWORD not in text
        assert token not in text


# -- orphan trunk adapters ------------------------------------------------------------------


def _ovs_pair(adapter, lpar_uuid, mgmt_uuid, vswitch, n):
    cna, trunks = pvm_cna.crt_p2p_cna(
        adapter,
        None,
        lpar_uuid,
        [mgmt_uuid],
        vswitch,
        crt_vswitch=True,
        dev_name=f"tap-test-{n}",
        ovs_bridge="br-int",
        ovs_ext_ids=f"iface-id=port-{n}",
    )
    return cna, trunks[0]


def test_init_host_deletes_orphan_trunks_on_the_novalink_io_switch(conf, novalink, drivers):
    inv = small(
        lpars=[
            {"name": "keep", "memory_mb": 1024, "proc_units": 0.5, "vcpus": 1},
            {"name": "gone", "memory_mb": 1024, "proc_units": 0.5, "vcpus": 1},
        ]
    )
    srv = novalink(inv)
    local(conf, srv, volume_group_name="datavg")
    first = drivers()
    first.init_host("compute")
    adapter = first.host.adapter
    lpars = {lp.name: lp for lp in pvm_par.get_partitions(adapter, lpars=True, vioses=False)}
    mgmt = pvm_par.get_mgmt_partition(adapter)
    vswitch = CONF.powervm.pvm_vswitch_for_novalink_io
    _, kept_trunk = _ovs_pair(adapter, lpars["keep"].uuid, mgmt.uuid, vswitch, 1)
    gone_cna, orphan = _ovs_pair(adapter, lpars["gone"].uuid, mgmt.uuid, vswitch, 2)
    # A trunk on another switch whose client is gone is not this driver's.
    foreign_cna, foreign = _ovs_pair(adapter, lpars["gone"].uuid, mgmt.uuid, "OTHERSWITCH", 3)
    view = NovaLinkView(srv)
    before = set(view.trunk_adapters())
    assert {kept_trunk.mac, orphan.mac, foreign.mac} <= before
    # nova-compute died between deleting the client adapters and their trunks.
    gone_cna.delete()
    foreign_cna.delete()
    first.cleanup_host("compute")

    drivers().init_host("compute")

    after = set(view.trunk_adapters())
    assert before - after == {orphan.mac}
    assert kept_trunk.mac in after and foreign.mac in after


def _vioses_without_rmc(srv):
    with srv.emu.lock:
        for v in srv.emu.store.list("VirtualIOServer"):
            v.elem.find(".//{*}ResourceMonitoringControlState").text = "inactive"
            v.bump()


def test_no_ready_vios_fails_naming_the_wait_option(conf, novalink, drivers):
    srv = novalink()
    _vioses_without_rmc(srv)
    local(conf, srv, vios_ready_timeout=0)
    msg = init_fails(drivers)
    assert "no Virtual I/O Server is ready" in msg
    assert "vios_ready_timeout" in msg


@pytest.mark.parametrize("count", [0, 2])
def test_a_novalink_with_other_than_one_managed_system_is_refused(
    conf, novalink, drivers, monkeypatch, count
):
    """One nova-compute serves one managed system; NovaLink manages exactly one,
    so anything else is a misconfiguration (e.g. an HMC's REST API given)."""
    from pypowervm.wrappers import managed_system as pvm_ms

    srv = novalink()
    local(conf, srv)
    real_get = pvm_ms.System.get

    def systems(adapter, *args, **kwargs):
        found = real_get(adapter, *args, **kwargs)
        return (found * 2)[:count]

    monkeypatch.setattr(pvm_ms.System, "get", staticmethod(systems))
    msg = init_fails(drivers)
    assert f"it manages {count} systems" in msg
