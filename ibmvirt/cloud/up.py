"""Bring the cloud up (idempotently) and down again.

Order matters: MariaDB and RabbitMQ, then Keystone and its catalog while the
other services' databases are synced, then the APIs, the emulators, the
agents and one nova-compute per emulated host. Every step that finds its
process running (by recorded PID) or its one-time work done (a marker in
data/) skips itself, so a second ``make cloud`` takes seconds.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from ibmvirt.cloud import config
from ibmvirt.cloud.layout import PORTS, POWERVM_HOSTS, Layout
from ibmvirt.cloud.procs import CloudError, Supervisor, http_answers, port_open, wait_for

APT_PACKAGES = {"mariadbd": "mariadb-server", "rabbitmq-server": "rabbitmq-server"}
RABBIT_BIN = "/usr/lib/rabbitmq/bin/rabbitmq-server"
DATABASES = (
    "keystone",
    "placement",
    "glance",
    "nova_api",
    "nova",
    "nova_cell0",
    "neutron",
    "cinder",
)

#: (name, port, WSGI module, environment naming the config).
APIS = (
    ("placement", "placement", "placement.wsgi.api:application", "OS_PLACEMENT_CONFIG_DIR"),
    ("glance-api", "glance", "glance.wsgi.api:application", "OS_GLANCE_CONFIG_DIR"),
    ("neutron-api", "neutron", "neutron.wsgi.api:application", "OS_NEUTRON_CONFIG_DIR"),
    ("nova-api", "nova", "nova.wsgi.osapi_compute:application", "OS_NOVA_CONFIG_DIR"),
)

#: Stopped last, in this order, once every OpenStack service is gone (nova
#: services hang in shutdown when RabbitMQ is already gone).
INFRA = ("rabbitmq", "epmd", "mariadb")

# Nova 34 services run in native threads, as in the tests.
NOVA_ENV = {"OS_NOVA_DISABLE_EVENTLET_PATCHING": "1", "PYTHONWARNINGS": "ignore"}


class Cloud:
    def __init__(self, lay: Layout, say: Callable[[str], None] = print) -> None:
        self.lay = lay
        self.sup = Supervisor(lay.run, lay.logs)
        self.say = say
        self._t0 = time.monotonic()

    # ---- helpers --------------------------------------------------------------
    def step(self, what: str) -> None:
        self.say(f"[{time.monotonic() - self._t0:6.1f} s] {what}")

    def marker(self, name: str) -> Path:
        return self.lay.data / f".{name}.done"

    def run(
        self, name: str, argv: Sequence[str], env: dict | None = None, check: bool = True, **kw
    ) -> str:
        """Run a one-shot command, its output appended to logs/<name>.log."""
        full_env = {**os.environ, **NOVA_ENV, **(env or {})}
        with open(self.sup.log_of(name), "ab") as log:
            proc = subprocess.run(  # noqa: S603
                list(argv), stdout=subprocess.PIPE, stderr=log, env=full_env, **kw
            )
            log.write(proc.stdout)
        if check and proc.returncode != 0:
            raise CloudError(
                f"{argv[0]} failed (exit {proc.returncode}); see {self.sup.log_of(name)}"
            )
        return proc.stdout.decode()

    def etc(self, rel: str) -> str:
        return str(self.lay.etc / rel)

    # ---- up -------------------------------------------------------------------
    def up(self) -> None:
        self.ensure_packages()
        for d in ("data/locks/neutron", "data/locks/cinder", "data/glance/images", "data/cinder"):
            (self.lay.root / d).mkdir(parents=True, exist_ok=True)
        config.write_all(self.lay)
        self.step("configs written to " + str(self.lay.etc))
        self.mariadb()
        self.rabbitmq()
        self.keystone()
        with ThreadPoolExecutor(max_workers=5) as pool:
            futures = [
                pool.submit(self.catalog),
                pool.submit(
                    self.db_sync,
                    "placement",
                    [
                        self.lay.bin("placement-manage"),
                        "--config-file",
                        self.etc("placement/placement.conf"),
                        "db",
                        "sync",
                    ],
                ),
                pool.submit(
                    self.db_sync,
                    "glance",
                    [
                        self.lay.bin("glance-manage"),
                        "--config-file",
                        self.etc("glance/glance-api.conf"),
                        "db_sync",
                    ],
                ),
                pool.submit(
                    self.db_sync,
                    "neutron",
                    [
                        self.lay.bin("neutron-db-manage"),
                        "--config-file",
                        self.etc("neutron/neutron.conf"),
                        "--config-file",
                        self.etc("neutron/plugins/ml2/ml2_conf.ini"),
                        "upgrade",
                        "head",
                    ],
                ),
                pool.submit(self.nova_db),
                pool.submit(
                    self.db_sync,
                    "cinder",
                    [
                        self.lay.bin("cinder-manage"),
                        "--config-file",
                        self.etc("cinder/cinder.conf"),
                        "db",
                        "sync",
                    ],
                ),
            ]
            for f in futures:
                f.result()
        self.step("catalog and databases ready")
        self.apis()
        self.emulators()
        self.controllers()
        self.computes()
        self.step("cloud up: . " + str(self.lay.openrc))

    def ensure_packages(self) -> None:
        """MariaDB and RabbitMQ from Debian when missing (needs root, as apt does)."""
        missing = [
            pkg
            for exe, pkg in APT_PACKAGES.items()
            if not shutil.which(exe, path=os.environ.get("PATH", "") + ":/usr/sbin")
        ]
        if not missing:
            return
        self.step("installing Debian packages: " + " ".join(missing))
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        self.run("apt", ["apt-get", "update", "-qq"], env=env)
        self.run(
            "apt", ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env
        )

    def mariadb(self) -> None:
        datadir = self.lay.data / "mysql"
        if not (datadir / "mysql").is_dir():
            self.run(
                "mariadb-install",
                [
                    "mysql_install_db",
                    f"--defaults-file={self.etc('my.cnf')}",
                    "--user=root",
                    f"--datadir={datadir}",
                    "--auth-root-authentication-method=socket",
                    "--skip-test-db",
                ],
            )
        self.sup.start(
            "mariadb",
            ["/usr/sbin/mariadbd", f"--defaults-file={self.etc('my.cnf')}", "--user=root"],
        )
        sock = self.lay.run / "mysqld.sock"
        wait_for(
            lambda: sock.exists() and port_open(PORTS["mariadb"]),
            "MariaDB",
            60,
            self.sup.log_of("mariadb"),
        )
        pw = self.lay.secrets()["db"]
        sql = "".join(f"CREATE DATABASE IF NOT EXISTS {db};" for db in DATABASES)
        sql += f"CREATE USER IF NOT EXISTS 'openstack'@'127.0.0.1' IDENTIFIED BY '{pw}';"
        sql += f"ALTER USER 'openstack'@'127.0.0.1' IDENTIFIED BY '{pw}';"
        sql += "GRANT ALL PRIVILEGES ON *.* TO 'openstack'@'127.0.0.1'; FLUSH PRIVILEGES;"
        self.run(
            "mariadb-init",
            ["mysql", f"--defaults-file={self.etc('my.cnf')}", "-uroot"],
            input=sql.encode(),
        )
        self.step(f"MariaDB on {self.lay.host}:{PORTS['mariadb']}")

    def rabbitmq(self) -> None:
        """RabbitMQ run directly as root (not Debian's wrapper, which switches to
        the rabbitmq user) with its own epmd, all on loopback."""
        base = self.lay.data / "rabbitmq"
        base.mkdir(parents=True, exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")
        epmd_env = {"ERL_EPMD_ADDRESS": self.lay.host, "ERL_EPMD_PORT": str(PORTS["epmd"])}
        self.sup.start(
            "epmd",
            ["/usr/bin/epmd", "-address", self.lay.host, "-port", str(PORTS["epmd"])],
            env=epmd_env,
        )
        wait_for(lambda: port_open(PORTS["epmd"]), "epmd", 20, self.sup.log_of("epmd"))
        dport = PORTS["rabbitmq_dist"]
        dist = (
            "-kernel inet_dist_use_interface {127,0,0,1} "
            f"-kernel inet_dist_listen_min {dport} -kernel inet_dist_listen_max {dport}"
        )
        env = {
            **epmd_env,
            "HOME": str(base),
            "RABBITMQ_NODENAME": "rabbit@localhost",
            "RABBITMQ_DIST_PORT": str(dport),
            "RABBITMQ_CONFIG_FILE": str(self.lay.etc / "rabbitmq" / "rabbitmq"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.lay.logs),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            # Erlang writes crash dumps to its working directory otherwise.
            "ERL_CRASH_DUMP": str(self.lay.logs / "erl_crash.dump"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": dist,
            "RABBITMQ_CTL_ERL_ARGS": dist,
        }
        self.sup.start("rabbitmq", [RABBIT_BIN], env=env)
        wait_for(lambda: port_open(PORTS["rabbitmq"]), "RabbitMQ", 120, self.sup.log_of("rabbitmq"))
        self.step(f"RabbitMQ on {self.lay.host}:{PORTS['rabbitmq']}")

    def uwsgi(
        self, name: str, port: int, module: str, env: dict[str, str], pyargv: str | None = None
    ) -> None:
        argv = [
            self.lay.bin("uwsgi"),
            "--master",
            "--http-socket",
            f"{self.lay.host}:{port}",
            "--module",
            module,
            "--virtualenv",
            str(self.lay.venv),
            "--processes",
            "1",
            "--threads",
            "4",
            "--enable-threads",
            "--lazy-apps",
            "--die-on-term",
            "--need-app",
            "--buffer-size",
            "65535",
            "--hook-master-start",
            "unix_signal:15 gracefully_kill_them_all",
            "--add-header",
            "Connection: close",
        ]
        if pyargv:
            argv += ["--pyargv", pyargv]
        for k, v in env.items():
            argv += ["--env", f"{k}={v}"]
        self.sup.start(name, argv, env=NOVA_ENV)

    def keystone(self) -> None:
        kc = ["--config-file", self.etc("keystone/keystone.conf")]
        if not self.marker("keystone").exists():
            km = self.lay.bin("keystone-manage")
            self.run("keystone-manage", [km, *kc, "db_sync"])
            self.run(
                "keystone-manage",
                [km, *kc, "fernet_setup", "--keystone-user", "root", "--keystone-group", "root"],
            )
            self.run(
                "keystone-manage",
                [
                    km,
                    *kc,
                    "credential_setup",
                    "--keystone-user",
                    "root",
                    "--keystone-group",
                    "root",
                ],
            )
            url = self.lay.url("keystone", "/v3/")
            self.run(
                "keystone-manage",
                [
                    km,
                    *kc,
                    "bootstrap",
                    "--bootstrap-password",
                    self.lay.secrets()["admin"],
                    "--bootstrap-admin-url",
                    url,
                    "--bootstrap-internal-url",
                    url,
                    "--bootstrap-public-url",
                    url,
                    "--bootstrap-region-id",
                    "RegionOne",
                ],
            )
            self.marker("keystone").touch()
        self.uwsgi(
            "keystone",
            PORTS["keystone"],
            "keystone.wsgi.api:application",
            {"OS_KEYSTONE_CONFIG_DIR": self.etc("keystone")},
        )
        wait_for(
            lambda: http_answers(self.lay.url("keystone", "/v3")),
            "Keystone",
            120,
            self.sup.log_of("keystone"),
        )
        self.step("Keystone answering")

    def catalog(self) -> None:
        if self.marker("catalog").exists():
            return
        pw = self.lay.secrets()["service"]
        cmds = [
            "project create --domain Default --or-show service",
            f"user create --domain Default --password {pw} --or-show openstack",
            "role add --project service --user openstack admin",
            "role add --project service --user openstack service",
        ]
        services = {
            "placement": ("placement", ""),
            "glance": ("image", ""),
            "nova": ("compute", "/v2.1"),
            "neutron": ("network", ""),
            "cinder": ("volumev3", "/v3"),
        }
        for name, (kind, path) in services.items():
            cmds.append(f"service create --name {name} {kind}")
            for iface in ("public", "internal"):
                cmds.append(
                    f"endpoint create --region RegionOne {kind} {iface} {self.lay.url(name, path)}"
                )
        # One CLI process for all (each separate call costs about 1.5 s); its
        # interactive mode exits 1 at the end of input, so check the result.
        openstack = self.lay.bin("openstack")
        self.run(
            "catalog", [openstack], env=self.os_env(), check=False, input="\n".join(cmds).encode()
        )
        out = self.run(
            "catalog",
            [openstack, "endpoint", "list", "-f", "value", "-c", "URL"],
            env=self.os_env(),
        )
        if len(out.split()) < 2 * len(services):
            raise CloudError(f"the service catalog is incomplete; see {self.sup.log_of('catalog')}")
        self.marker("catalog").touch()

    def os_env(self) -> dict[str, str]:
        env = {}
        for line in config.openrc(self.lay).splitlines():
            if line.startswith("export OS_"):
                k, v = line[len("export ") :].split("=", 1)
                env[k] = v
        return env

    def db_sync(self, name: str, argv: list[str]) -> None:
        if self.marker(f"db-{name}").exists():
            return
        self.run(f"{name}-dbsync", argv)
        self.marker(f"db-{name}").touch()

    def nova_db(self) -> None:
        if self.marker("db-nova").exists():
            return
        nm = [self.lay.bin("nova-manage"), "--config-file", self.etc("nova/nova.conf")]
        self.run("nova-dbsync", [*nm, "api_db", "sync"])
        self.run(
            "nova-dbsync",
            [*nm, "cell_v2", "map_cell0", "--database_connection", self.lay.db_url("nova_cell0")],
        )
        cells = self.run("nova-dbsync", [*nm, "cell_v2", "list_cells"])
        if " cell1 " not in cells:
            self.run("nova-dbsync", [*nm, "cell_v2", "create_cell", "--name", "cell1"])
        self.run("nova-dbsync", [*nm, "db", "sync"])
        self.marker("db-nova").touch()

    def apis(self) -> None:
        for name, port_key, module, env_name in APIS:
            env = {env_name: self.etc(port_key if port_key != "nova" else "nova")}
            if port_key == "nova":
                env["OS_NOVA_CONFIG_FILES"] = "api-paste.ini;nova.conf;nova-api-log.conf"
            self.uwsgi(name, PORTS[port_key], module, env)
        self.uwsgi(
            "cinder-api",
            PORTS["cinder"],
            "cinder.wsgi.api:application",
            {},
            pyargv=(
                f"--config-file {self.etc('cinder/cinder.conf')} "
                f"--log-file {self.lay.logs / 'cinder-api.log'}"
            ),
        )
        for name, port_key, *_ in (*APIS, ("cinder-api", "cinder")):
            wait_for(
                lambda p=port_key: http_answers(self.lay.url(p, "/")),
                name,
                180,
                self.sup.log_of(name),
            )
        self.step("Placement, Glance, Neutron, Nova and Cinder APIs answering")
        if not self.marker("volume-type").exists():
            # cinder.conf's default_volume_type must exist, on the SAN backend.
            openstack = self.lay.bin("openstack")
            argv = ["volume", "type", "create", "--property", "volume_backend_name=san", "san"]
            self.run("catalog", [openstack, *argv], env=self.os_env())
            self.marker("volume-type").touch()

    def emulators(self) -> None:
        """One NovaLink emulator per PowerVM host, peers of each other (their
        VIOSes are in one SSP cluster, so servers can move between them)."""
        names = list(POWERVM_HOSTS)
        for host, port in POWERVM_HOSTS.items():
            state = self.lay.data / f"novalink-{host}"
            state.mkdir(mode=0o700, parents=True, exist_ok=True)
            inv = state / "inventory.yaml"
            inv.write_text(yaml.safe_dump(_inventory(f"pvm-{host}")))
            self.sup.start(
                f"novalink-{host}",
                [
                    self.lay.bin("ibmvirt-novalink-emulator"),
                    "--inventory",
                    str(inv),
                    "--port",
                    str(port),
                    "--state-dir",
                    str(state),
                    "--keep-disk-data",
                ],
            )
        for host, port in POWERVM_HOSTS.items():
            wait_for(
                lambda p=port: port_open(p),
                f"NovaLink emulator of {host}",
                60,
                self.sup.log_of(f"novalink-{host}"),
            )
        first, second = names[0], names[1]
        url = f"http://{self.lay.host}:{POWERVM_HOSTS[first]}/_emulator/peers"
        body = {"name": f"pvm-{second}", "url": f"http://{self.lay.host}:{POWERVM_HOSTS[second]}"}
        _post(url, body)  # idempotent: a restarted emulator is a peer again
        self.step(
            "NovaLink emulators: " + ", ".join(f"{h} on :{p}" for h, p in POWERVM_HOSTS.items())
        )

    def controllers(self) -> None:
        nc = ["--config-file", self.etc("nova/nova.conf")]
        # ibmvirt-nova-conductor: nova-conductor that knows the PowerVM migrate data.
        self.sup.start(
            "nova-conductor", [self.lay.bin("ibmvirt-nova-conductor"), *nc], env=NOVA_ENV
        )
        self.sup.start("nova-scheduler", [self.lay.bin("nova-scheduler"), *nc], env=NOVA_ENV)
        neutron = [
            "--config-file",
            self.etc("neutron/neutron.conf"),
            "--config-file",
            self.etc("neutron/plugins/ml2/ml2_conf.ini"),
        ]
        self.sup.start("neutron-rpc-server", [self.lay.bin("neutron-rpc-server"), *neutron])
        cc = ["--config-file", self.etc("cinder/cinder.conf")]
        self.sup.start("cinder-scheduler", [self.lay.bin("cinder-scheduler"), *cc])
        self.sup.start("cinder-volume", [self.lay.bin("cinder-volume"), *cc])
        for host in POWERVM_HOSTS:
            self.sup.start(
                f"sea-agent-{host}",
                [
                    self.lay.bin("ibmvirt-powervm-sea-agent"),
                    "--config-file",
                    self.etc("neutron/neutron.conf"),
                    "--config-file",
                    self.etc(f"neutron/sea-agent-{host}.ini"),
                ],
            )

    def computes(self) -> None:
        self.remember_node_identities()
        for host in POWERVM_HOSTS:
            self.sup.start(
                f"nova-compute-{host}",
                [
                    self.lay.bin("nova-compute"),
                    "--config-file",
                    self.etc(f"nova/nova-compute-{host}.conf"),
                ],
                env=NOVA_ENV,
            )
        env = self.os_env()
        openstack = self.lay.bin("openstack")

        def computes_up() -> bool:
            out = subprocess.run(
                [
                    openstack,
                    "compute",
                    "service",
                    "list",
                    "--service",
                    "nova-compute",
                    "-f",
                    "json",
                ],  # noqa: S603
                capture_output=True,
                env={**os.environ, **env},
                check=False,
            )
            try:
                rows = json.loads(out.stdout)
            except ValueError:
                return False
            up = {r["Host"] for r in rows if r["State"] == "up"}
            return set(POWERVM_HOSTS) <= up

        wait_for(
            computes_up,
            "nova-compute on " + ", ".join(POWERVM_HOSTS),
            240,
            self.sup.log_of("nova-compute-pvm1"),
        )
        self.run(
            "nova-dbsync",
            [
                self.lay.bin("nova-manage"),
                "--config-file",
                self.etc("nova/nova.conf"),
                "cell_v2",
                "discover_hosts",
            ],
        )
        self.step("nova-compute up on " + ", ".join(POWERVM_HOSTS))

    def remember_node_identities(self) -> None:
        """Give a restarted nova-compute the node identity file Nova 34 insists
        on (``state_path/compute_id``): ibmvirt's drivers derive their node
        UUIDs and never write it, so without this a nova-compute that ran
        before refuses to start ("No local node identity found"). The UUIDs
        come from Nova's database, as the node records hold them."""
        sql = "SELECT host, uuid FROM nova.compute_nodes WHERE deleted = 0;"
        out = self.run(
            "nova-node-identity",
            ["mysql", f"--defaults-file={self.etc('my.cnf')}", "-uroot", "-N", "-B", "-e", sql],
        )
        for line in out.splitlines():
            host, node = line.split("\t")
            path = self.lay.data / "nova" / host / "compute_id"
            if host in POWERVM_HOSTS and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(node + "\n")

    # ---- down -----------------------------------------------------------------
    def stop(self) -> list[str]:
        """Stop every recorded process: the services in parallel (each gets
        20 s to shut down gracefully, then SIGKILL), then the infrastructure."""
        names = self.sup.recorded()
        services = [n for n in names if n not in INFRA]
        with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
            done = list(pool.map(lambda n: self.sup.stop(n, timeout=20), services))
        stopped = [n for n, ok in zip(services, done, strict=True) if ok]
        for name in INFRA:
            if name in names and self.sup.stop(name, timeout=30):
                stopped.append(name)
        return stopped


def _inventory(system_name: str) -> dict:
    """The shipped ``small`` system named ``system_name``, without its own
    discoverable FC disks: every LUN comes from the emulated SAN (Cinder)."""
    from ibmvirt.emulators.novalink import inventory

    with open(inventory.builtin_path("small"), encoding="utf-8") as f:
        inv = copy.deepcopy(yaml.safe_load(f))
    import hashlib

    serial = hashlib.sha256(system_name.encode()).hexdigest()[:7].upper()
    inv["host"] = dict(inv["host"], name=system_name, mtms=f"8408-E8E*{serial}")
    for vios in inv.get("vioses", []):
        vios.pop("discoverable_volumes", None)
    return inv


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(  # noqa: S310  (loopback emulator)
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
        return json.loads(resp.read() or b"{}")
