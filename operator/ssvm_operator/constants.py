"""Names shared by the CRDs, the handlers, the chart and the tests: one place for each."""

GROUP = "ssvm.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
FINALIZER = f"{GROUP}/finalizer"   # kopf's, on every Zone and SSVM: deletion waits for the VMs to go
CATEGORY = "cloud"

# kind -> (plural, singular, short name)
ZONE_KIND, ZONE_PLURAL, ZONE_SHORT = "Zone", "zones", "zone"
IMAGESTORE_KIND, IMAGESTORE_PLURAL, IMAGESTORE_SHORT = "ImageStore", "imagestores", "imgstore"
SSVM_KIND, SSVM_PLURAL, SSVM_SHORT = "SecondaryStorageVM", "secondarystoragevms", "ssvm"
TEMPLATE_KIND, TEMPLATE_PLURAL, TEMPLATE_SHORT = "Template", "templates", "tmpl"

# Labels and annotations the operator puts on the objects it creates.
LABEL_PREFIX = "ssvm.io"
LABEL_ZONE = f"{LABEL_PREFIX}/zone"
LABEL_ROLE = f"{LABEL_PREFIX}/role"
LABEL_SSVM = f"{LABEL_PREFIX}/ssvm"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "ssvm-operator"

# The guest channel's SSH port (CloudStack's link-local control port).
SSH_PORT = 3922
