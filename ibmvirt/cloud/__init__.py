"""The real multi-process OpenStack of ``make cloud``.

MariaDB, RabbitMQ, Keystone, Placement, Glance, Cinder (on the emulated SAN),
Neutron with ibmvirt's mechanism drivers and agents, and Nova with one
nova-compute per emulated host, every one a process started from configs
generated here, all on loopback, all state under one directory. Modules:
``layout`` (paths, ports, secrets), ``config`` (config files), ``procs``
(supervision by recorded PID, readiness waits), ``up`` (the steps),
``scenario`` (``make cloud-test``: the openstack CLI against it).
"""
