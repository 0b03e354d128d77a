"""The KubeVirt VM backend: SSVMs as `kubevirt.io/v1` VirtualMachines (pure builders in
`manifests`/`userdata`, observation in `observe`, the API-facing backend in `backend`)."""
