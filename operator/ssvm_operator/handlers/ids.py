"""Handler ids: kopf keys its progress on them, so they must stay stable across releases."""

STARTUP_SETTINGS = "ssvm-startup-settings"
INIT_STATUS = {
    "Zone": "zone-init-status",
    "ImageStore": "imagestore-init-status",
    "SecondaryStorageVM": "ssvm-init-status",
}
