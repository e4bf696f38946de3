"""Config files of every service of the cloud, generated from the Layout.

One function per service, each returning {relative path under etc/: text}.
Configs are regenerated on every ``make cloud`` (cheap, and a changed
layout takes effect); secrets come from ``Layout.secrets()``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ibmvirt.cloud.layout import PORTS, POWERVM_HOSTS, Layout

Sections = Mapping[str, Mapping[str, object]]

#: VLANs Neutron hands out on physnet1, bridged by each PowerVM host's SEA.
VLAN_RANGE = "physnet1:2000:2099"


def ini(sections: Sections) -> str:
    out = []
    for name, opts in sections.items():
        out.append(f"[{name}]")
        for key, value in opts.items():
            values = value if isinstance(value, list | tuple) else [value]
            out.extend(f"{key} = {v}" for v in values)
        out.append("")
    return "\n".join(out)


def _authtoken(lay: Layout) -> dict[str, object]:
    return {
        "www_authenticate_uri": lay.url("keystone"),
        "auth_url": lay.url("keystone"),
        "auth_type": "password",
        "project_domain_name": "Default",
        "user_domain_name": "Default",
        "project_name": "service",
        "username": "openstack",
        "password": lay.secrets()["service"],
        "service_token_roles_required": "true",
    }


def _service_auth(lay: Layout) -> dict[str, object]:
    auth = _authtoken(lay)
    del auth["www_authenticate_uri"], auth["service_token_roles_required"]
    return {**auth, "region_name": "RegionOne"}


def _common(lay: Layout, log_name: str, **extra: object) -> dict[str, object]:
    return {
        "log_file": str(lay.logs / f"{log_name}.log"),
        "transport_url": lay.transport_url(),
        **extra,
    }


def infra(lay: Layout) -> dict[str, str]:
    """MariaDB and RabbitMQ, private data directories, loopback only."""
    my_cnf = ini(
        {
            "mysqld": {
                "datadir": lay.data / "mysql",
                "socket": lay.run / "mysqld.sock",
                "pid-file": lay.run / "mysqld.own-pid",
                "bind-address": lay.host,
                "port": PORTS["mariadb"],
                "max_connections": 1000,
                "innodb_buffer_pool_size": "128M",
                "innodb_flush_log_at_trx_commit": 2,
                "skip-name-resolve": "1",
                "log-error": lay.logs / "mariadb.log",
            },
            "client": {"socket": lay.run / "mysqld.sock"},
        }
    )
    pw = lay.secrets()["rabbit"]
    rabbit = "\n".join(
        [
            f"listeners.tcp.default = {lay.host}:{PORTS['rabbitmq']}",
            f"default_user = openstack\ndefault_pass = {pw}",
            "loopback_users = none",
            f"log.file = {lay.logs / 'rabbitmq.log'}",
            "log.console = false",
            "",
        ]
    )
    return {"my.cnf": my_cnf, "rabbitmq/rabbitmq.conf": rabbit}


def keystone(lay: Layout) -> dict[str, str]:
    ks = lay.etc / "keystone"
    return {
        "keystone/keystone.conf": ini(
            {
                "DEFAULT": {"log_file": lay.logs / "keystone.log"},
                "database": {"connection": lay.db_url("keystone")},
                "token": {"provider": "fernet"},
                "fernet_tokens": {"key_repository": ks / "fernet-keys"},
                "fernet_receipts": {"key_repository": ks / "fernet-keys"},
                "credential": {"key_repository": ks / "credential-keys"},
                # Keystone is the CPU hot spot on two cores; fewer bcrypt rounds.
                "identity": {"password_hash_rounds": 4},
            }
        )
    }


def placement(lay: Layout) -> dict[str, str]:
    return {
        "placement/placement.conf": ini(
            {
                "DEFAULT": {"log_file": lay.logs / "placement.log"},
                "placement_database": {"connection": lay.db_url("placement")},
                "api": {"auth_strategy": "keystone"},
                "keystone_authtoken": _authtoken(lay),
            }
        )
    }


def glance(lay: Layout) -> dict[str, str]:
    d = lay.data / "glance"
    return {
        "glance/glance-api.conf": ini(
            {
                "DEFAULT": {"log_file": lay.logs / "glance-api.log", "enabled_backends": "fs:file"},
                "glance_store": {"default_backend": "fs"},
                "fs": {"filesystem_store_datadir": d / "images"},
                "os_glance_staging_store": {"filesystem_store_datadir": d / "staging"},
                "os_glance_tasks_store": {"filesystem_store_datadir": d / "tasks"},
                "database": {"connection": lay.db_url("glance")},
                "paste_deploy": {"flavor": "keystone"},
                "keystone_authtoken": _authtoken(lay),
                "oslo_concurrency": {"lock_path": lay.data / "locks"},
            }
        ),
        "glance/glance-api-paste.ini": _venv_file(lay, "glance/glance-api-paste.ini"),
    }


def _nova_common(lay: Layout, host: str, log_name: str) -> dict[str, dict[str, object]]:
    return {
        "DEFAULT": _common(
            lay,
            log_name,
            host=host,
            my_ip=lay.host,
            state_path=lay.data / "nova" / host,
            instances_path=lay.data / "nova" / host / "instances",
            allow_resize_to_same_host="true",
            # Ports go ACTIVE when our agents see the adapter; wait for that.
            vif_plugging_timeout=120,
            vif_plugging_is_fatal="true",
        ),
        "api": {"auth_strategy": "keystone"},
        "wsgi": {"api_paste_config": lay.etc / "nova" / "api-paste.ini"},
        "conductor": {"workers": 1},
        "scheduler": {"workers": 1, "discover_hosts_in_cells_interval": -1},
        "keystone_authtoken": _authtoken(lay),
        "service_user": {"send_service_user_token": "true", **_service_auth(lay)},
        "placement": _service_auth(lay),
        "neutron": _service_auth(lay),
        "glance": {"region_name": "RegionOne"},
        "cinder": {"os_region_name": "RegionOne", **_service_auth(lay)},
        "vnc": {"enabled": "false"},
        "oslo_concurrency": {"lock_path": lay.data / "locks" / host},
        "oslo_messaging_notifications": {"driver": "noop"},
    }


def nova(lay: Layout) -> dict[str, str]:
    """Controller config (API, conductor, scheduler, nova-manage) and one
    config per nova-compute, without database credentials (nova-compute
    refuses DB access)."""
    ctl = _nova_common(lay, "controller", "nova")
    ctl["api_database"] = {"connection": lay.db_url("nova_api")}
    ctl["database"] = {"connection": lay.db_url("nova")}
    files = {
        "nova/nova.conf": ini(ctl),
        # Under uwsgi oslo.log would name the log after argv; give it a file.
        "nova/nova-api-log.conf": ini({"DEFAULT": {"log_file": lay.logs / "nova-api.log"}}),
        "nova/api-paste.ini": _venv_file(lay, "nova/api-paste.ini"),
    }
    for host, port in POWERVM_HOSTS.items():
        conf = _nova_common(lay, host, f"nova-compute-{host}")
        conf["DEFAULT"].update(
            compute_driver="ibmvirt.PowerVMDriver",
            reserved_host_memory_mb=0,
        )
        conf["powervm"] = _powervm(host, port)
        files[f"nova/nova-compute-{host}.conf"] = ini(conf)
    return files


def _powervm(host: str, port: int) -> dict[str, object]:
    """nova-compute on the NovaLink partition: local file logon, no password;
    boot disks in the SSP both hosts share (so servers can move)."""
    return {
        "novalink_port": port,
        "disk_driver": "ssp",
        "vios_ready_timeout": 0,
        "lifecycle_event_delay": 2,
        "mgmt_disk_access": "emulator",
        "vterm_access": "emulator",
        "vnc_relay_port": 0,
    }


def neutron(lay: Layout) -> dict[str, str]:
    files = {
        "neutron/neutron.conf": ini(
            {
                "DEFAULT": _common(
                    lay,
                    "neutron-server",
                    core_plugin="ml2",
                    service_plugins="",
                    auth_strategy="keystone",
                    state_path=lay.data / "neutron",
                    notify_nova_on_port_status_changes="true",
                    notify_nova_on_port_data_changes="true",
                    api_workers=1,
                    rpc_workers=1,
                    rpc_state_report_workers=0,
                ),
                "database": {"connection": lay.db_url("neutron")},
                "keystone_authtoken": _authtoken(lay),
                "nova": _service_auth(lay),
                "oslo_concurrency": {"lock_path": lay.data / "locks" / "neutron"},
                "agent": {"report_interval": 10},
            }
        ),
        "neutron/plugins/ml2/ml2_conf.ini": ini(
            {
                "ml2": {
                    "type_drivers": "flat,vlan",
                    "tenant_network_types": "vlan",
                    "mechanism_drivers": "pvm_sea,pvm_sriov,dpm",
                    "extension_drivers": "port_security",
                },
                "ml2_type_flat": {"flat_networks": "*"},
                "ml2_type_vlan": {"network_vlan_ranges": VLAN_RANGE},
            }
        ),
        "neutron/api-paste.ini": _venv_file(lay, "neutron/api-paste.ini"),
    }
    for host, port in POWERVM_HOSTS.items():
        files[f"neutron/sea-agent-{host}.ini"] = ini(
            {
                "DEFAULT": _common(lay, f"sea-agent-{host}", host=host),
                "AGENT": {"polling_interval": 2},
                "SECURITYGROUP": {"firewall_driver": "noop"},
                "powervm": {"novalink_port": port},
            }
        )
    return files


def cinder(lay: Layout) -> dict[str, str]:
    nl_urls = ",".join(f"http://{lay.host}:{p}" for p in POWERVM_HOSTS.values())
    return {
        "cinder/cinder.conf": ini(
            {
                "DEFAULT": _common(
                    lay,
                    "cinder",
                    host="cloud",
                    my_ip=lay.host,
                    state_path=lay.data / "cinder",
                    auth_strategy="keystone",
                    api_paste_config=lay.etc / "cinder" / "api-paste.ini",
                    resource_query_filters_file=lay.etc / "cinder" / "resource_filters.json",
                    enabled_backends="san",
                    default_volume_type="san",
                    glance_api_servers=lay.url("glance"),
                    osapi_volume_workers=1,
                ),
                "san": {
                    "volume_driver": "ibmvirt.sandbox.cinder_san.EmulatedSANDriver",
                    "volume_backend_name": "san",
                    "emulated_san_novalink_urls": nl_urls,
                },
                "database": {"connection": lay.db_url("cinder")},
                "keystone_authtoken": _authtoken(lay),
                "nova": _service_auth(lay),
                "oslo_concurrency": {"lock_path": lay.data / "locks" / "cinder"},
            }
        ),
        "cinder/api-paste.ini": _venv_file(lay, "cinder/api-paste.ini"),
        "cinder/resource_filters.json": _venv_file(lay, "cinder/resource_filters.json"),
    }


def openrc(lay: Layout) -> str:
    return "\n".join(
        [
            f"export OS_AUTH_URL={lay.url('keystone', '/v3')}",
            "export OS_IDENTITY_API_VERSION=3",
            "export OS_USERNAME=admin",
            f"export OS_PASSWORD={lay.secrets()['admin']}",
            "export OS_PROJECT_NAME=admin",
            "export OS_USER_DOMAIN_NAME=Default",
            "export OS_PROJECT_DOMAIN_NAME=Default",
            "export OS_REGION_NAME=RegionOne",
            f"export PATH={lay.venv / 'bin'}:$PATH",
            "",
        ]
    )


def _venv_file(lay: Layout, rel: str) -> str:
    return (lay.venv / "etc" / rel).read_text()


def write_all(lay: Layout) -> None:
    """Write every config (mode 0600: they hold passwords)."""
    files: dict[str, str] = {}
    for gen in (infra, keystone, placement, glance, nova, neutron, cinder):
        files.update(gen(lay))
    for rel, text in files.items():
        _write_private(lay.etc / rel, text)
    _write_private(lay.openrc, openrc(lay))


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
