{{/*
Names, labels and the few derived values every template shares.
*/}}

{{- define "argo-http-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "argo-http-agent.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "argo-http-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "argo-http-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "argo-http-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "argo-http-agent.labels" -}}
helm.sh/chart: {{ include "argo-http-agent.chart" . }}
{{ include "argo-http-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "argo-http-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "argo-http-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "argo-http-agent.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The namespaces served in namespaced mode, as a JSON list: `namespaces`, or the release's. */}}
{{- define "argo-http-agent.namespaces" -}}
{{- if .Values.namespaces }}
{{- .Values.namespaces | uniq | toJson }}
{{- else }}
{{- list .Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{/* The RBAC rules for tasksets and Secrets: exactly what the agent calls, nothing more. */}}
{{- define "argo-http-agent.rules" -}}
- apiGroups: ["argoproj.io"]
  resources: ["workflowtasksets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["argoproj.io"]
  resources: ["workflowtasksets/status"]
  verbs: ["patch"]
{{- if .Values.rbac.secrets.enabled }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- with .Values.rbac.secrets.resourceNames }}
  resourceNames:
    {{- toYaml . | nindent 4 }}
{{- end }}
{{- end }}
{{- /* The owner Workflow names the service account whose authority a Secret is used with,
and its status.artifactRepositoryRef the repository an artifact goes to. */}}
{{- if or .Values.artifacts.enabled (and .Values.rbac.secrets.enabled (eq .Values.secretAuthority "workflow")) }}
- apiGroups: ["argoproj.io"]
  resources: ["workflows"]
  verbs: ["get"]
{{- end }}
{{- if .Values.artifacts.enabled }}
{{- /* The namespace's default artifact repository (Argo's artifact-repositories ConfigMap). */}}
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
  resourceNames: ["artifact-repositories"]
{{- end }}
{{- end }}

{{/* The member group: `group`, or the release's full name (releases never mix members). */}}
{{- define "argo-http-agent.group" -}}
{{- default (include "argo-http-agent.fullname" .) .Values.group }}
{{- end }}

{{/* The namespace of the members' Leases: `leaseNamespace`, or the release's. */}}
{{- define "argo-http-agent.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaseNamespace }}
{{- end }}

{{/* The membership RBAC rule: what a member does with Leases (its own and the others'). */}}
{{- define "argo-http-agent.leaseRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "list", "watch", "create", "update", "delete"]
{{- end }}

{{/* The update strategy: `strategy`, or the one `membership` calls for. */}}
{{- define "argo-http-agent.strategy" -}}
{{- if .Values.strategy }}
{{- toYaml .Values.strategy }}
{{- else if eq .Values.membership "lease" }}
type: RollingUpdate
rollingUpdate:
  maxSurge: 1
  maxUnavailable: 0
{{- else }}
type: Recreate
{{- end }}
{{- end }}

{{/* Refuse value combinations the schema cannot express. */}}
{{- define "argo-http-agent.validate" -}}
{{- if hasKey .Values "replicas" }}
{{- fail "replicas was renamed replicaCount (replicas now coordinate through Leases: see membership)" }}
{{- end }}
{{- if and (ne .Values.membership "lease") (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount %v needs membership: lease; with membership: %s every replica would execute every task" .Values.replicaCount .Values.membership) }}
{{- end }}
{{- if and (ne .Values.membership "lease") (eq (toString .Values.strategy.type) "RollingUpdate") }}
{{- fail "strategy RollingUpdate needs membership: lease; without it the old and the new agent would both execute new tasks (use Recreate)" }}
{{- end }}
{{- if and .Values.allNamespaces .Values.namespaces }}
{{- fail "allNamespaces and namespaces exclude each other: set one of them" }}
{{- end }}
{{- if le (float64 .Values.terminationGracePeriodSeconds) (float64 .Values.shutdownGrace) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed shutdownGrace (%v): the agent needs time to deliver its results after the grace period" .Values.terminationGracePeriodSeconds .Values.shutdownGrace) }}
{{- end }}
{{- end }}
