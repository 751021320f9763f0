{{/* Shared names and labels of the payment-operator chart. */}}

{{- define "payment-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name when it already contains the chart name, else release-chart. */}}
{{- define "payment-operator.fullname" -}}
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

{{- define "payment-operator.namespace" -}}
{{- default .Release.Namespace .Values.namespace.name }}
{{- end }}

{{- define "payment-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "payment-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "payment-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "payment-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "payment-operator.labels" -}}
{{ include "payment-operator.selectorLabels" . }}
app.kubernetes.io/part-of: paydeck
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* Name of the cluster-scoped PaymentServicePolicy: platformPolicy.name, else the full name. */}}
{{- define "payment-operator.platformPolicyName" -}}
{{- default (include "payment-operator.fullname" .) .Values.platformPolicy.name }}
{{- end }}
