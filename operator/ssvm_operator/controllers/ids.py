"""Handler ids: kopf keys its progress on them, so they must stay stable across releases. Index ids are
also the names under which handlers receive the indexes."""

STARTUP_SETTINGS = "ssvm-startup-settings"
LOGIN = "ssvm-login"
INIT_STATUS = {
    "Zone": "zone-init-status",
    "ImageStore": "imagestore-init-status",
    "SecondaryStorageVM": "ssvm-init-status",
    "Template": "template-init-status",
}

# zone controller
ZONES_INDEX = "zones_by_name"
STORES_INDEX = "stores_by_zone"
SSVM_ZONE_INDEX = "ssvm_zone_by_name"
ZONE_EVENT = "zone-wake"
STORE_EVENT = "imagestore-wake"
ZONE_RECONCILE = "zone-reconcile"
ZONE_FINALIZER = "zone-destroy-ssvms"

# ssvm controller
SSVMS_INDEX = "ssvms_by_zone"
SSVM_EVENT = "ssvm-wake"
SSVM_LIFECYCLE = "ssvm-lifecycle"
SSVM_FINALIZER = "ssvm-destroy-vm"
VM_EVENT = "kubevirt-vm-seen"
VMI_EVENT = "kubevirt-vmi-seen"

# guest controller
MESH_INDEX = "ssvm_mesh"
GUEST_SSVM_EVENT = "ssvm-guest-wake"
GUEST_ZONE_EVENT = "zone-guest-wake"
GUEST_STORE_EVENT = "imagestore-guest-wake"
GUEST_WORKER = "ssvm-guest-ops"

# template controller
TEMPLATE_SSVMS_INDEX = "template_ssvms_by_zone"
TEMPLATE_WORKER = "template-sync"
TEMPLATE_FINALIZER = "template-remove-files"
TEMPLATE_SSVM_EVENT = "ssvm-template-wake"
TEMPLATE_STORE_EVENT = "imagestore-template-wake"
TEMPLATE_ZONE_EVENT = "zone-template-wake"

# Event handlers that run on every watch event (waking a loop, filling in a missing condition): their success is not logged.
WAKE_HANDLERS = (ZONE_EVENT, STORE_EVENT, SSVM_EVENT, VM_EVENT, VMI_EVENT, GUEST_SSVM_EVENT, GUEST_ZONE_EVENT, GUEST_STORE_EVENT,
                 TEMPLATE_SSVM_EVENT, TEMPLATE_STORE_EVENT, TEMPLATE_ZONE_EVENT, *INIT_STATUS.values())

# Stopping daemons (operator exit, object deletion): a daemon asleep wakes on its stop flag and ends on its own;
# one still busy is cancelled after DAEMON_EXIT_GRACE and abandoned after DAEMON_CANCEL_TIMEOUT more.
DAEMON_EXIT_GRACE = 1.5
DAEMON_CANCEL_TIMEOUT = 5.0
