"""Nova compute driver for IBM Z / LinuxONE in DPM mode (``compute_driver = ibmvirt.DPMDriver``).

driver.py (Nova entry points) -> host.py (the CPC subset: start-up checks,
partition listing, status cache) -> partition.py (one instance's partition and
its status machine), storage/ (FCP paths: hba.py for z13, groups.py for z14+),
nic.py (NICs and their boot-parameter records, see bootparams.py), naming.py
(ownership by name), exceptions.py. Options: ibmvirt.conf.dpm.
"""
