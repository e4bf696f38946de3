"""Ceilometer compute inspectors for PowerVM (powervm.py) and DPM (dpm.py).

Each inspector answers every instance and meter of a polling cycle from one
bulk read of the hypervisor's metrics (see snapshot.py), so the requests per
cycle do not grow with the number of instances. doc/telemetry.md lists the
meters, their units and what is not available.
"""
