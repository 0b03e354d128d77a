"""VM backends: where SSVMs run (KubeVirt VirtualMachines, external hosts, in memory for demos)."""
