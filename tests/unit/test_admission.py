"""Admission of custom resources by the CRDs' schemas and CEL rules: examples pass, bad input is refused
with a message naming the field, as `kubectl apply` would show it."""
from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from ssvm_operator.api.validation import admit
from ssvm_operator.api.zone import normalized_site, proxy_endpoint

from tests.manifests import example_documents

ZONE = {"apiVersion": "ssvm.io/v1alpha1", "kind": "Zone", "metadata": {"name": "z1"},
        "spec": {"secondaryStorage": {"template": {"kubevirt": {"containerDiskImage": "img:1"}}}}}
STORE = {"apiVersion": "ssvm.io/v1alpha1", "kind": "ImageStore", "metadata": {"name": "s1"},
         "spec": {"zoneRef": "z1", "url": "nfs://10.0.0.5/export/secondary"}}
SSVM = {"apiVersion": "ssvm.io/v1alpha1", "kind": "SecondaryStorageVM", "metadata": {"name": "v1"},
        "spec": {"zoneRef": "z1"}}
TEMPLATE = {"apiVersion": "ssvm.io/v1alpha1", "kind": "Template", "metadata": {"name": "t1"},
            "spec": {"url": "https://images.example/t.qcow2", "format": "QCOW2", "zones": ["z1"]}}
BASE = {"Zone": ZONE, "ImageStore": STORE, "SecondaryStorageVM": SSVM, "Template": TEMPLATE}


def with_fields(kind: str, **paths) -> dict:
    """A copy of the base object of `kind` with dotted paths set (None deletes)."""
    obj = copy.deepcopy(BASE[kind])
    for dotted, value in paths.items():
        *parents, leaf = dotted.split("__")
        node = obj
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return obj


@pytest.mark.parametrize("name,doc", example_documents(), ids=[n for n, _ in example_documents()])
def test_examples_are_admitted(name, doc, crd_schemas):
    if doc["apiVersion"].startswith("ssvm.io/"):
        _, errors = admit(crd_schemas[doc["kind"]], doc)
        assert errors == [], f"{name}: {[str(e) for e in errors]}"
    else:
        kubernetes_validate.validate(doc, "1.37", strict=True)


def test_examples_cover_the_documented_cases():
    docs = [d for _, d in example_documents()]
    zones = [d for d in docs if d["kind"] == "Zone"]
    assert {z["spec"]["networkType"] for z in zones} == {"Basic", "Advanced"}
    advanced = next(z for z in zones if z["spec"]["networkType"] == "Advanced")
    stores = [d for d in docs if d["kind"] == "ImageStore" and d["spec"]["zoneRef"] == advanced["metadata"]["name"]]
    assert len(stores) == 2 and all(s["spec"].get("protocol", "nfs") == "nfs" for s in stores)
    assert any(d["kind"] == "SecondaryStorageVM" for d in docs)
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    referenced = {z["spec"]["secondaryStorage"]["copyPasswordSecretRef"]["name"] for z in zones}
    assert referenced <= secrets


SS = "spec__secondaryStorage__"
LIBVIRT = {"image": {"kernel": "/var/lib/ssvm/vmlinuz", "initrd": "/var/lib/ssvm/initrd.img", "rootDisk": "/var/lib/ssvm/rootfs.qcow2"},
           "networks": {"control": {"bridge": "cloud0", "cidr": "169.254.0.0/16"}}}


def libvirt(**changes):
    return {"libvirt": {**LIBVIRT, **changes}}


REFUSED = [
    # (id, kind, fields, field the message must name, words the message must contain)
    ("site-not-ip", "Zone", {SS + "allowedInternalSites": ["intranet"]}, "spec.secondaryStorage.allowedInternalSites[0]", "should match"),
    ("site-bad-prefix", "Zone", {SS + "allowedInternalSites": ["10.0.0.0/33"]}, "allowedInternalSites[0]", "should match"),
    ("site-octet", "Zone", {SS + "allowedInternalSites": ["10.0.0.256"]}, "allowedInternalSites[0]", "should match"),
    ("site-all", "Zone", {SS + "allowedInternalSites": ["10.1.0.0/16", "0.0.0.0/0"]}, "allowedInternalSites[1]", "0.0.0.0/x"),
    ("site-all-8", "Zone", {SS + "allowedInternalSites": ["0.0.0.0/8"]}, "allowedInternalSites[0]", "0.0.0.0/x"),
    ("proxy-https", "Zone", {SS + "httpProxy": "https://proxy:3128"}, "spec.secondaryStorage.httpProxy", "http scheme"),
    ("proxy-socks", "Zone", {SS + "httpProxy": "socks5://proxy"}, "httpProxy", "http scheme"),
    ("proxy-no-host", "Zone", {SS + "httpProxy": "http://"}, "httpProxy", "host"),
    ("proxy-port-only", "Zone", {SS + "httpProxy": "http://:3128"}, "httpProxy", "host"),
    ("proxy-credentials", "Zone", {SS + "httpProxy": "http://user:secret@proxy:3128"}, "httpProxy", "credentials"),
    ("backend-unknown", "Zone", {SS + "backend": "vmware"}, "spec.secondaryStorage.backend", "Unsupported value"),
    ("max-zero", "Zone", {SS + "maxCount": 0}, "spec.secondaryStorage.maxCount", "greater than or equal to 1"),
    ("min-negative", "Zone", {SS + "minRunning": -1}, "spec.secondaryStorage.minRunning", "greater than or equal to 0"),
    ("session-zero", "Zone", {SS + "sessionMax": 0}, "spec.secondaryStorage.sessionMax", "greater than or equal to 1"),
    ("standby-negative", "Zone", {SS + "standbySessions": -5}, "standbySessions", "greater than or equal to 0"),
    ("cores-zero", "Zone", {SS + "offering": {"cpuCores": 0}}, "spec.secondaryStorage.offering.cpuCores", "greater than or equal"),
    ("memory-tiny", "Zone", {SS + "offering": {"memoryMiB": 16}}, "offering.memoryMiB", "greater than or equal"),
    ("min-above-max", "Zone", {SS + "minRunning": 4, SS + "maxCount": 3}, "spec.secondaryStorage.minRunning", "must not exceed maxCount"),
    ("mtu-low", "Zone", {SS + "mtu": 575}, "spec.secondaryStorage.mtu", "576"),
    ("mtu-high", "Zone", {SS + "mtu": 9001}, "spec.secondaryStorage.mtu", "9000"),
    ("network-type", "Zone", {"spec__networkType": "Flat"}, "spec.networkType", "Unsupported value"),
    ("dns-not-ip", "Zone", {"spec__dns": ["dns.example.com"]}, "spec.dns[0]", "should match"),
    ("dns-too-many", "Zone", {"spec__dns": ["1.1.1.1", "8.8.8.8", "9.9.9.9"]}, "spec.dns", "at most 2"),
    ("template-both", "Zone", {SS + "template": {"kubevirt": {"containerDiskImage": "a", "url": "http://x/y.qcow2"}}},
     "spec.secondaryStorage.template.kubevirt", "exactly one"),
    ("template-none", "Zone", {SS + "template": {"kubevirt": {}}}, "template.kubevirt", "exactly one"),
    ("mgmt-port", "Zone", {"spec__management": {"host": "10.0.0.1", "port": 70000}}, "spec.management.port", "less than or equal"),
    ("nfs-version", "Zone", {SS + "nfsVersion": "5"}, "spec.secondaryStorage.nfsVersion", "Unsupported value"),
    ("external-kubevirt-template", "Zone", {SS + "backend": "external"}, "spec.secondaryStorage.template", "template.external"),
    ("libvirt-kubevirt-template", "Zone", {SS + "backend": "libvirt"}, "spec.secondaryStorage.template", "template.libvirt"),
    ("libvirt-bridge-and-network", "Zone", {SS + "template": libvirt(networks={"control": {
        "bridge": "cloud0", "network": "default", "cidr": "169.254.0.0/16"}})}, "template.libvirt.networks.control", "exactly one"),
    ("libvirt-no-link", "Zone", {SS + "template": libvirt(networks={"control": {"cidr": "169.254.0.0/16"}})},
     "template.libvirt.networks.control", "exactly one"),
    ("libvirt-bridge-name", "Zone", {SS + "template": libvirt(networks={"control": {"bridge": "a-bridge-name-too-long", "cidr": "10.0.0.0/8"}})},
     "networks.control.bridge", "should match"),
    ("libvirt-relative-path", "Zone", {SS + "template": libvirt(image={**LIBVIRT["image"], "kernel": "vmlinuz"})},
     "template.libvirt.image.kernel", "should match"),
    ("libvirt-uri", "Zone", {SS + "template": libvirt(uri="xen:///system")}, "template.libvirt.uri", "should match"),
    ("libvirt-domain-type", "Zone", {SS + "template": libvirt(domainType="lxc")}, "template.libvirt.domainType", "Unsupported value"),
    ("libvirt-no-control", "Zone", {SS + "template": libvirt(networks={})}, "template.libvirt.networks.control", "Required value"),
    ("store-url-http", "ImageStore", {"spec__url": "http://10.0.0.5/export"}, "spec.url", "nfs://host/export/path"),
    ("store-url-no-path", "ImageStore", {"spec__url": "nfs://10.0.0.5"}, "spec.url", "nfs://host/export/path"),
    ("store-url-no-host", "ImageStore", {"spec__url": "nfs:///export"}, "spec.url", "nfs://host/export/path"),
    ("store-zone-empty", "ImageStore", {"spec__zoneRef": ""}, "spec.zoneRef", "at least 1"),
    ("store-zone-missing", "ImageStore", {"spec__zoneRef": None}, "spec.zoneRef", "Required value"),
    ("store-protocol", "ImageStore", {"spec__protocol": "cifs"}, "spec.protocol", "Unsupported value"),
    ("store-mount-option", "ImageStore", {"spec__mountOptions": ["soft;rm -rf /"]}, "spec.mountOptions[0]", "should match"),
    ("ssvm-role", "SecondaryStorageVM", {"spec__role": "consoleProxy"}, "spec.role", "Unsupported value"),
    ("ssvm-state", "SecondaryStorageVM", {"spec__desiredState": "Paused"}, "spec.desiredState", "Unsupported value"),
    ("ssvm-zone-empty", "SecondaryStorageVM", {"spec__zoneRef": ""}, "spec.zoneRef", "at least 1"),
    ("ssvm-zone-missing", "SecondaryStorageVM", {"spec__zoneRef": None}, "spec.zoneRef", "Required value"),
    ("ssvm-token", "SecondaryStorageVM", {"spec__rebootRequest": "now please"}, "spec.rebootRequest", "should match"),
    # names that become label values and host names
    ("zone-name-64", "Zone", {"metadata__name": "z" * 64}, "metadata.name", "at most 63 characters"),
    ("ssvm-name-64", "SecondaryStorageVM", {"metadata__name": "v" * 64}, "metadata.name", "at most 63 characters"),
    # image references are OCI references: nothing a shell or a YAML line could carry
    ("image-shell", "Zone", {SS + "template": {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.19; rm -rf /"}}},
     "spec.secondaryStorage.template.kubevirt.containerDiskImage", "OCI image reference"),
    ("image-newline", "Zone", {SS + "template": {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.19\nextra: 1"}}},
     "template.kubevirt.containerDiskImage", "OCI image reference"),
    ("image-trailing-newline", "Zone", {SS + "template": {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.19\n"}}},
     "template.kubevirt.containerDiskImage", "OCI image reference"),
    ("image-subshell", "Zone", {SS + "template": {"kubevirt": {"containerDiskImage": "$(curl http://10.0.0.1/x)"}}},
     "template.kubevirt.containerDiskImage", "OCI image reference"),
    ("image-upper-repository", "Zone", {SS + "template": {"kubevirt": {"containerDiskImage": "registry.example/SystemVM:4.19"}}},
     "template.kubevirt.containerDiskImage", "OCI image reference"),
    ("image-short-digest", "Zone", {SS + "template": {"kubevirt": {"containerDiskImage": "registry.example/systemvm@sha256:abc"}}},
     "template.kubevirt.containerDiskImage", "OCI image reference"),
    ("ssvm-override-image", "SecondaryStorageVM", {"spec__template": {"kubevirt": {"containerDiskImage": "systemvm:`id`"}}},
     "spec.template.kubevirt.containerDiskImage", "OCI image reference"),
    ("store-s3-not-served", "ImageStore", {"spec__protocol": "s3", "spec__url": "https://s3.example.com/bucket"}, "spec.protocol",
     "Unsupported value"),
    ("store-url-trailing-newline", "ImageStore", {"spec__url": "nfs://10.0.0.5/export/secondary\n"}, "spec.url", "nfs://host/export/path"),
    ("template-ftp", "Template", {"spec__url": "ftp://images.example/t.qcow2"}, "spec.url", "http:// or https://"),
    ("template-credentials", "Template", {"spec__url": "http://user:pw@images.example/t.qcow2"}, "spec.url", "credentials"),
    ("template-space", "Template", {"spec__url": "http://images.example/a b.qcow2"}, "spec.url", "without spaces"),
    ("template-format", "Template", {"spec__format": "VMDK"}, "spec.format", "Unsupported value"),
    ("template-checksum-short", "Template", {"spec__checksum": "sha256:abc"}, "spec.checksum", "sha256:<64 hex>"),
    ("template-checksum-algorithm", "Template", {"spec__checksum": "sha1:" + "a" * 40}, "spec.checksum", "sha256:<64 hex>"),
    ("template-no-zone", "Template", {"spec__zones": None}, "spec.zones", "allZones"),
    ("template-both", "Template", {"spec__allZones": True}, "spec.zones", "allZones"),
    ("template-size-zero", "Template", {"spec__maxSizeGiB": 0}, "spec.maxSizeGiB", "greater than or equal to 1"),
    ("template-stall", "Template", {"spec__download": {"stallTimeoutSeconds": 1}}, "spec.download.stallTimeoutSeconds",
     "greater than or equal to 5"),
]


@pytest.mark.parametrize("case,kind,fields,field,words", REFUSED, ids=[r[0] for r in REFUSED])
def test_bad_object_is_refused_naming_the_field(case, kind, fields, field, words, crd_schemas):
    _, errors = admit(crd_schemas[kind], with_fields(kind, **fields))
    assert errors, f"{case}: admitted"
    named = [e for e in errors if field in e.field]
    assert named, f"{case}: errors {[str(e) for e in errors]} do not name {field}"
    assert any(words in e.message for e in named), f"{case}: {[str(e) for e in named]} lack {words!r}"


IMMUTABLE = [
    ("store-url", "ImageStore", {"spec__url": "nfs://10.0.0.6/export/other"}, "spec.url"),
    ("store-zone", "ImageStore", {"spec__zoneRef": "z2"}, "spec.zoneRef"),
    ("ssvm-zone", "SecondaryStorageVM", {"spec__zoneRef": "z2"}, "spec.zoneRef"),
    ("template-url", "Template", {"spec__url": "https://images.example/other.qcow2"}, "spec.url"),
    ("template-format", "Template", {"spec__format": "RAW"}, "spec.format"),
]


@pytest.mark.parametrize("case,kind,fields,field", IMMUTABLE, ids=[r[0] for r in IMMUTABLE])
def test_immutable_fields_refuse_changes_on_update(case, kind, fields, field, crd_schemas):
    old = BASE[kind]
    _, errors = admit(crd_schemas[kind], with_fields(kind, **fields), old=old)
    assert [e.field for e in errors] == [field]
    assert "immutable" in errors[0].message
    _, unchanged = admit(crd_schemas[kind], copy.deepcopy(old), old=old)
    assert unchanged == []


def test_mutable_fields_may_change(crd_schemas):
    old = BASE["SecondaryStorageVM"]
    _, errors = admit(crd_schemas["SecondaryStorageVM"], with_fields("SecondaryStorageVM", spec__desiredState="Stopped"), old=old)
    assert errors == []


ACCEPTED = [
    ("plain-ip-site", "Zone", {SS + "allowedInternalSites": ["10.9.8.7", "192.168.0.0/16"]}),
    ("proxy-no-port", "Zone", {SS + "httpProxy": "http://proxy.example.com"}),
    ("proxy-ip-port", "Zone", {SS + "httpProxy": "http://10.0.0.3:8080/"}),
    ("min-equals-max", "Zone", {SS + "minRunning": 2, SS + "maxCount": 2}),
    ("min-zero", "Zone", {SS + "minRunning": 0}),
    ("mtu-bounds", "Zone", {SS + "mtu": 576}),
    ("quickcloud", "Zone", {SS + "enabled": False, SS + "backend": "external", SS + "template": {"external": {"hosts": [
        {"name": "store-host-1", "address": "10.4.0.7", "hostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB"}]}}}),
    ("libvirt-remote", "Zone", {SS + "backend": "libvirt", SS + "template": libvirt(
        uri="qemu+ssh://root@kvm1.example/system", sshKeySecretRef={"name": "kvm1-ssh", "key": "ssh-privatekey"}, domainType="qemu",
        networks={"control": {"bridge": "cloud0", "cidr": "169.254.0.0/16", "firstAddress": "169.254.0.10"},
                  "storage": {"network": "storage-net", "cidr": "10.5.0.0/24", "gateway": "10.5.0.1"}})}),
    ("store-port", "ImageStore", {"spec__url": "nfs://nfs1.example.com:2049/export/sec/ondary"}),
    ("name-63", "Zone", {"metadata__name": "z" * 63}),
    ("image-digest", "Zone", {SS + "template": {"kubevirt": {"containerDiskImage": "quay.io/kubevirt/fedora:39@sha256:" + "a" * 64}}}),
    ("image-registry-port", "Zone", {SS + "template": {"kubevirt": {"containerDiskImage": "localhost:5000/ssvm/systemvm_4.19:v1.2-rc"}}}),
    ("ssvm-override-image", "SecondaryStorageVM", {"spec__template": {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.20"}}}),
    ("template-cloudstack-checksum", "Template", {"spec__checksum": "{SHA-512}" + "ab" * 64}),
    ("template-all-zones-iso", "Template", {"spec__zones": None, "spec__allZones": True, "spec__format": "ISO",
                                            "spec__url": "http://10.0.0.9:8080/isos/debian-12.iso", "spec__checksum": "md5:" + "0" * 32}),
]


@pytest.mark.parametrize("case,kind,fields", ACCEPTED, ids=[r[0] for r in ACCEPTED])
def test_valid_variants_are_admitted(case, kind, fields, crd_schemas):
    _, errors = admit(crd_schemas[kind], with_fields(kind, **fields))
    assert errors == [], [str(e) for e in errors]


def test_defaults_are_applied_and_unknown_fields_pruned(crd_schemas):
    stored, errors = admit(crd_schemas["Zone"], with_fields("Zone", spec__bogus=1, **{SS + "flavour": "x"}))
    assert errors == []
    ss = stored["spec"]["secondaryStorage"]
    assert "bogus" not in stored["spec"] and "flavour" not in ss
    assert (ss["minRunning"], ss["maxCount"], ss["mtu"], ss["backend"], ss["enabled"]) == (1, 5, 1500, "kubevirt", True)
    assert ss["offering"]["memoryMiB"] == 512 and ss["health"]["intervalSeconds"] == 60
    assert stored["spec"]["networkType"] == "Advanced"


@pytest.mark.parametrize("site,cidr", [("10.9.8.7", "10.9.8.7/32"), ("10.1.0.0/16", "10.1.0.0/16"), ("10.1.2.3/16", "10.1.0.0/16")])
def test_allowed_site_normalised_to_cidr(site, cidr):
    assert normalized_site(site) == cidr


@pytest.mark.parametrize("url,endpoint", [("http://proxy", ("proxy", 3128)), ("http://10.0.0.3:8080/", ("10.0.0.3", 8080))])
def test_proxy_port_defaults_to_3128(url, endpoint):
    assert proxy_endpoint(url) == endpoint


def test_cel_rules_still_run_beside_pattern_errors_but_not_beside_type_errors(crd_schemas):
    # kube-apiserver skips every CEL rule when a blocking error (wrong type, missing required field, enum,
    # maxLength, maxItems) is found anywhere, and adds a cause that says so.
    both = with_fields("Zone", **{SS + "minRunning": 4, SS + "maxCount": 3, SS + "allowedInternalSites": ["intranet"]})
    fields = {e.field for e in admit(crd_schemas["Zone"], both)[1]}
    assert {"spec.secondaryStorage.minRunning", "spec.secondaryStorage.allowedInternalSites[0]"} <= fields
    typed = with_fields("Zone", **{SS + "minRunning": 4, SS + "maxCount": "three"})
    errors = admit(crd_schemas["Zone"], typed)[1]
    assert [(e.field, e.reason) for e in errors] == [("spec.secondaryStorage.maxCount", "FieldValueTypeInvalid"),
                                                     ("<nil>", "FieldValueInvalid")]
    assert "some validation rules were not checked" in errors[1].message
