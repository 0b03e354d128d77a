"""Handler ids: kopf keys its progress on them, so they must stay stable across releases."""

STARTUP_SETTINGS = "ssvm-startup-settings"
LOGIN = "ssvm-login"
INIT_STATUS = {
    "Zone": "zone-init-status",
    "ImageStore": "imagestore-init-status",
    "SecondaryStorageVM": "ssvm-init-status",
}

# Reconciler (issue 4). Index ids are also the kwarg names handlers receive the indices under.
STARTUP_RUNTIME = "ssvm-startup-runtime"
ZONES_INDEX = "zones_by_name"
STORES_INDEX = "stores_by_zone"
SSVMS_INDEX = "ssvms_by_zone"
ZONE_EVENT = "zone-wake"
ZONE_RECONCILE = "zone-reconcile"
ZONE_FINALIZER = "zone-destroy-ssvms"
STORE_EVENT = "imagestore-wake"
SSVM_EVENT = "ssvm-wake"
SSVM_LIFECYCLE = "ssvm-lifecycle"
SSVM_FINALIZER = "ssvm-destroy-vm"
