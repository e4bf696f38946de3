"""ibmvirt: OpenStack for IBM PowerVM (NovaLink) and IBM Z DPM (HMC)."""
