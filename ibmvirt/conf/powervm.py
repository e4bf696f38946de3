"""``[powervm]`` options of the PowerVM compute driver.

A nova-compute service with ``compute_driver = ibmvirt.PowerVMDriver`` manages
the client LPARs of one IBM Power managed system through its NovaLink REST API,
usually from the NovaLink partition itself (local file logon), or remotely
with a user and password over verified HTTPS. Option names and defaults are
those of the retired nova-powervm where they still mean the same thing.
Everything is checked when nova-compute starts (init_host).
"""

from __future__ import annotations

from oslo_config import cfg

powervm_group = cfg.OptGroup(
    "powervm",
    title="IBM PowerVM options",
    help="Options for ibmvirt.PowerVMDriver, the Nova driver for IBM Power "
    "servers managed through NovaLink (the PowerVM REST API).",
)

connection_opts = [
    cfg.HostAddressOpt(
        "novalink_host",
        help="Host name or IP address of a remote NovaLink partition's REST API. "
        "Unset (the default) means nova-compute runs on the NovaLink partition "
        "and logs on locally with NovaLink's file-based logon (the service user "
        "must be in the pvm_admin group); no password is then needed.",
    ),
    cfg.PortOpt(
        "novalink_port",
        help="TCP port of the REST API. Default: 12443 for https, 12080 for http "
        "(the local logon uses http on the partition's loopback).",
    ),
    cfg.StrOpt(
        "novalink_protocol",
        choices=["https", "http"],
        help="Protocol of a remote NovaLink. Default: https remotely, http for "
        "the local logon. Plain http to a remote host sends the password in clear.",
    ),
    cfg.StrOpt(
        "novalink_username",
        help="NovaLink user for a remote logon (a member of pvm_admin). Required "
        "with novalink_host.",
    ),
    cfg.StrOpt(
        "novalink_password",
        secret=True,
        help="Password of novalink_username. Required with novalink_host.",
    ),
    cfg.StrOpt(
        "novalink_ca_file",
        help="CA bundle (PEM) that signed the remote NovaLink's TLS certificate. "
        "Unset: the system trust store. Every request is verified, not only the "
        "logon.",
    ),
    cfg.BoolOpt(
        "novalink_insecure",
        default=False,
        help="Do not verify the remote NovaLink's TLS certificate. Only for test "
        "systems: anyone on the network path can then read the password.",
    ),
    cfg.IntOpt(
        "vios_ready_timeout",
        default=300,
        min=0,
        help="Seconds init_host waits for the Virtual I/O Servers to be running "
        "with RMC active (after a host reboot they come up after NovaLink).",
    ),
    cfg.FloatOpt(
        "lifecycle_event_delay",
        default=15.0,
        min=0.0,
        help="Seconds after the last state change of an LPAR made outside Nova "
        "(from the NovaLink CLI, or by its OS) before it is reported to Nova, "
        "so that a burst such as a reboot gives one event, in its final state.",
    ),
]

compute_opts = [
    cfg.FloatOpt(
        "proc_units_factor",
        default=0.1,
        min=0.05,
        max=1.0,
        help="Physical processor units each vCPU of a flavor gets "
        "(powervm:proc_units overrides it per flavor). The host offers "
        "processor units / proc_units_factor VCPUs to placement.",
    ),
    cfg.IntOpt(
        "uncapped_proc_weight",
        default=64,
        min=1,
        max=255,
        help="Uncapped weight of shared-processor LPARs (powervm:shared_weight "
        "overrides it per flavor).",
    ),
    cfg.StrOpt(
        "disk_driver",
        default="localdisk",
        choices=[
            ("localdisk", "boot disks are logical volumes in a VIOS volume group"),
            ("ssp", "boot disks are linked clones in a Shared Storage Pool"),
        ],
        help="Where the boot disk of an image-booted instance lives.",
    ),
    cfg.StrOpt(
        "mgmt_disk_access",
        default="sysfs",
        choices=[
            (
                "sysfs",
                "rescan the SCSI bus of the NovaLink partition and read the disk "
                "from /dev/disk/by-id (a real NovaLink; needs privsep)",
            ),
            (
                "emulator",
                "read the data the NovaLink emulator keeps for the disk "
                "(its control endpoint on loopback; for the sandbox and tests only)",
            ),
        ],
        help="How snapshot reads a boot disk once a VIOS has mapped it to the "
        "management partition. Keep sysfs on a NovaLink partition.",
    ),
    cfg.StrOpt(
        "vterm_access",
        default="mkvterm",
        choices=[
            (
                "mkvterm",
                "NovaLink's mkvterm on the NovaLink partition (VNC consoles; "
                "NovaLink keeps no terminal history, so no console log)",
            ),
            (
                "emulator",
                "the terminals of the NovaLink emulator (its control endpoint on "
                "loopback: console log and VNC; for the sandbox and tests only)",
            ),
        ],
        help="How nova-compute reaches an LPAR's virtual terminal for the console "
        "log and VNC consoles. Keep mkvterm on a NovaLink partition.",
    ),
    cfg.PortOpt(
        "vnc_relay_port",
        default=5901,
        help="Port on [vnc] server_listen where nova-novncproxy reaches the LPARs' "
        "VNC consoles (through a relay to each LPAR's terminal, which listens on "
        "localhost only). 0: any free port (tests).",
    ),
    cfg.StrOpt(
        "volume_group_name",
        default="",
        help="localdisk: the VIOS volume group holding boot disks and cached "
        "images. Empty: the one volume group other than rootvg, if there is "
        "exactly one on the host's VIOSes.",
    ),
    cfg.StrOpt(
        "cluster_name",
        default="",
        help="ssp: the cluster whose Shared Storage Pool holds boot disks. "
        "Empty: the only cluster this host's VIOSes belong to.",
    ),
    cfg.StrOpt(
        "vopt_media_volume_group",
        default="rootvg",
        help="Volume group in which the virtual media repository (for config "
        "drives) is created when no VIOS has one.",
    ),
    cfg.IntOpt(
        "vopt_media_rep_size",
        default=1,
        min=1,
        help="Size in GB of the virtual media repository created when missing.",
    ),
    cfg.BoolOpt(
        "remove_vopt_media_on_boot",
        default=False,
        help="Remove the config drive from the LPAR remove_vopt_media_time "
        "minutes after it boots (it is always removed on destroy).",
    ),
    cfg.IntOpt(
        "remove_vopt_media_time",
        default=60,
        min=0,
        help="Minutes after power-on at which the config drive is removed, with "
        "remove_vopt_media_on_boot.",
    ),
    cfg.BoolOpt(
        "use_rmc_mgmt_vif",
        default=True,
        help="Give every LPAR an adapter on the MGMTSWITCH virtual switch "
        "(VLAN 4094) so RMC, which DLPAR operations such as attaching "
        "interfaces and volumes to a running LPAR need, reaches NovaLink. "
        "Skipped when the host has no MGMTSWITCH.",
    ),
    cfg.StrOpt(
        "pvm_vswitch_for_novalink_io",
        default="NovaLinkVEABridge",
        help="Virtual switch pairing the client adapters of ovs VIFs with their "
        "trunk adapters on the NovaLink partition (created when missing).",
    ),
    cfg.IntOpt(
        "vscsi_vios_connections_required",
        default=1,
        min=1,
        help="Minimum number of VIOSes that must see a Fibre Channel volume "
        "(vSCSI) for an attach to succeed; 2 for dual-VIOS redundancy.",
    ),
    cfg.BoolOpt(
        "volume_use_multipath",
        default=False,
        help="Tell Cinder the host uses multipath (sent in the volume connector) "
        "and log iSCSI volumes in over every portal Cinder gives.",
    ),
    cfg.StrOpt(
        "fc_attach_strategy",
        default="vscsi",
        choices=[
            ("vscsi", "the VIOSes discover the LUN (hdisk) and map it over vSCSI"),
            ("npiv", "the LPAR gets virtual FC ports with WWPNs of its own (vFC mappings)"),
        ],
        mutable=True,
        help="How Cinder fibre_channel volumes reach an LPAR.",
    ),
    cfg.ListOpt(
        "fabrics",
        default=["A"],
        help="NPIV: the names of the SAN fabrics. Each fabric <X> needs "
        "fabric_<X>_port_wwpns, the WWPNs of the VIOS physical FC ports cabled "
        "to it; every LPAR gets ports_per_fabric virtual ports on each fabric.",
    ),
    cfg.IntOpt(
        "ports_per_fabric",
        default=1,
        min=1,
        max=8,
        help="NPIV: virtual FC ports per fabric and LPAR, spread over the "
        "fabric's VIOS physical ports (NovaLink hands out at most 8 WWPN pairs "
        "at once).",
    ),
    cfg.BoolOpt(
        "iscsi_volumes",
        default=True,
        help="Whether Cinder may give this host iSCSI or iSER volumes. True: the "
        "volume connector Nova sends Cinder carries the iSCSI initiator name of "
        "the first VIOS (Cinder's iSCSI drivers need it, and Nova asks for the "
        "connector before it knows a volume's type), read from NovaLink at the "
        "first connector of each nova-compute process (one job). False, for hosts "
        "whose volumes are Fibre Channel, file or RBD only: the initiator is never "
        "read and the connector has none, so Cinder's iSCSI drivers refuse to "
        "export to this host.",
    ),
    cfg.StrOpt(
        "iscsi_iface",
        default="default",
        help="iSCSI: the VIOS transport iface the sessions use (iSER volumes always use 'iser').",
    ),
    cfg.StrOpt(
        "rbd_user",
        default="",
        help="RBD: the Ceph user the NovaLink partition maps images as (empty: "
        "the user Cinder names in the connection info, else Ceph's default).",
    ),
]

nvram_opts = [
    cfg.StrOpt(
        "nvram_store",
        default="none",
        choices=[
            ("none", "NVRAM is not kept: an evacuated LPAR starts with blank NVRAM"),
            ("swift", "in a Swift container (swift_* options), for several sites"),
            ("local", "as files in nvram_local_path, shared by the hosts (one site)"),
        ],
        help="Where copies of the LPARs' NVRAM (boot list, firmware settings) are "
        "kept, so that an LPAR recreated on another host (evacuate, cold migration) "
        "boots as before. Copies are taken when NovaLink reports an NVRAM change and "
        "before a move, and removed when the instance is deleted.",
    ),
    cfg.StrOpt(
        "nvram_local_path",
        default="$state_path/powervm_nvram",
        help="nvram_store = local: the directory of the copies (one file per "
        "instance). For evacuate, every host must see the same directory (NFS).",
    ),
    cfg.StrOpt(
        "swift_container",
        default="powervm_nvram",
        help="nvram_store = swift: the container; the same on every host.",
    ),
    cfg.URIOpt(
        "swift_auth_url",
        help="nvram_store = swift: the Keystone v3 URL (e.g. https://keystone:5000/v3).",
    ),
    cfg.StrOpt("swift_username", default="powervm", help="Keystone user for Swift."),
    cfg.StrOpt("swift_user_domain_name", default="Default", help="Domain of swift_username."),
    cfg.StrOpt(
        "swift_password",
        secret=True,
        help="Password of swift_username (required with nvram_store = swift).",
    ),
    cfg.StrOpt("swift_project_name", default="service", help="Project owning the container."),
    cfg.StrOpt(
        "swift_project_domain_name", default="Default", help="Domain of swift_project_name."
    ),
    cfg.StrOpt(
        "swift_cacert",
        help="CA bundle (PEM) for Keystone's and Swift's TLS certificates. Unset: "
        "the system trust store.",
    ),
    cfg.StrOpt(
        "swift_endpoint_type",
        default="public",
        choices=["public", "internal", "admin"],
        help="Which Swift endpoint of the Keystone catalog to use.",
    ),
    cfg.StrOpt("swift_region_name", help="Region of the Swift endpoint (unset: any)."),
]

powervm_opts = connection_opts + compute_opts + nvram_opts


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the [powervm] group on ``conf`` (idempotent)."""
    conf.register_group(powervm_group)
    conf.register_opts(powervm_opts, group=powervm_group)


def fabric_port_wwpns(conf: cfg.ConfigOpts, fabric: str) -> list[str]:
    """``[powervm] fabric_<fabric>_port_wwpns``: registered when first read,
    since the fabric names come from another option (as nova-powervm did)."""
    name = f"fabric_{fabric}_port_wwpns"
    opt = cfg.ListOpt(
        name,
        default=[],
        help=f"NPIV: WWPNs of the VIOS physical FC ports on fabric {fabric}.",
    )
    try:
        conf.register_opt(opt, group=powervm_group)
    except cfg.DuplicateOptError:
        pass
    return [w.replace(":", "").upper() for w in getattr(conf.powervm, name) if w]


def list_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    """Entry point for oslo-config-generator (namespace ``ibmvirt.powervm``)."""
    return [(powervm_group, powervm_opts)]
