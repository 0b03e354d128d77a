{{/* Chart name, overridable. */}}
{{- define "ssvm-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name unless the release already holds it. */}}
{{- define "ssvm-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else if hasPrefix (printf "%s-" .Release.Name) $name }}
{{- /* release "ssvm" of chart "ssvm-operator": "ssvm-operator", not "ssvm-ssvm-operator" */ -}}
{{- $name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ssvm-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ssvm-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ssvm-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ssvm-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "ssvm-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ssvm-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ssvm-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Peering is on with several replicas (kopf pauses all but the highest priority), or when asked. */}}
{{- define "ssvm-operator.peering" -}}
{{- if or (gt (int .Values.replicaCount) 1) .Values.peering.enabled }}true{{ end }}
{{- end }}

{{- define "ssvm-operator.peeringName" -}}
{{- default (include "ssvm-operator.fullname" .) .Values.peering.name }}
{{- end }}

{{- define "ssvm-operator.clusterWide" -}}
{{- if not .Values.watch.namespaces }}true{{ end }}
{{- end }}

{{/*
Rules in every namespace the operator serves: exactly the calls it makes there.
tests/chart/test_rbac.py derives them from the API calls of a run against the dev cluster.
*/}}
{{- define "ssvm-operator.namespacedRules" -}}
- apiGroups: [ssvm.io]
  resources: [zones]
  verbs: [get, list, watch, patch]
- apiGroups: [ssvm.io]
  resources: [imagestores]
  verbs: [get, list, watch]
- apiGroups: [ssvm.io]
  resources: [secondarystoragevms]
  verbs: [get, list, watch, create, patch, delete]
# templates: kopf's finalizer is a patch; the files leave the stores before it goes
- apiGroups: [ssvm.io]
  resources: [templates]
  verbs: [get, list, watch, patch]
- apiGroups: [ssvm.io]
  resources: [zones/status, imagestores/status, secondarystoragevms/status, templates/status]
  verbs: [patch]
# VMs and their instances are watched (observing one costs no request) and read when not seen yet
- apiGroups: [kubevirt.io]
  resources: [virtualmachines]
  verbs: [get, list, watch, create, patch, delete]
# a reboot deletes the running instance; KubeVirt starts a new one (runStrategy Always)
- apiGroups: [kubevirt.io]
  resources: [virtualmachineinstances]
  verbs: [get, list, watch, delete]
# cloud-init user data and SSH keys of each SSVM; update promotes the next operator key during a rotation
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, update, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# each SSVM's diagnostics bundle (a diagnosticsRequest), created once and then patched
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create, patch]
{{- if and (include "ssvm-operator.peering" .) (not (include "ssvm-operator.clusterWide" .)) }}
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [list, watch, patch]
{{- end }}
{{- end }}

{{/* Rules only a ClusterRole can grant: cluster-scoped resources kopf reads. */}}
{{- define "ssvm-operator.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if not (include "ssvm-operator.clusterWide" .) }}
# kopf watches namespaces when it serves a list of them (to follow their creation and deletion)
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
{{- if and (include "ssvm-operator.clusterWide" .) (include "ssvm-operator.peering" .) }}
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [list, watch, patch]
{{- end }}
{{- end }}
