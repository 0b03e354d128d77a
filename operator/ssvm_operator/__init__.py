"""ssvm-operator: Secondary Storage VMs managed declaratively on Kubernetes."""

__version__ = "0.1.0"
