"""ML2 mechanism drivers: pvm_sea, pvm_sriov and dpm, one module each."""
