"""SSVMs as libvirt domains (KVM or QEMU software emulation)."""
