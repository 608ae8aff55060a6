{{/*
Names. The fullname is the release name, or "<release>-oauth-client-operator" when the
release name does not already contain the chart name; it names the Deployment, the
token-server Service (and so the default issuer URL) and the ServiceAccount.
*/}}
{{- define "oauth-client-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "oauth-client-operator.fullname" -}}
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

{{- define "oauth-client-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "oauth-client-operator.labels" -}}
helm.sh/chart: {{ include "oauth-client-operator.chart" . }}
{{ include "oauth-client-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: oauth-client-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the operator's pods (immutable once installed). */}}
{{- define "oauth-client-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "oauth-client-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end }}

{{- define "oauth-client-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "oauth-client-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "oauth-client-operator.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Token-server TLS: the Secret holding tls.crt and tls.key. */}}
{{- define "oauth-client-operator.tlsSecretName" -}}
{{- if .Values.tokenServer.tls.secretName }}
{{- .Values.tokenServer.tls.secretName }}
{{- else if .Values.tokenServer.tls.certManager.enabled }}
{{- printf "%s-tls" (include "oauth-client-operator.fullname" .) }}
{{- else }}
{{- fail "tokenServer.tls.enabled is true: set tokenServer.tls.secretName (an existing kubernetes.io/tls Secret) or tokenServer.tls.certManager.enabled=true" }}
{{- end }}
{{- end }}

{{/* The in-cluster DNS names of the token-server Service. */}}
{{- define "oauth-client-operator.serviceDNSNames" -}}
{{- $svc := include "oauth-client-operator.fullname" . }}
{{- $ns := .Release.Namespace -}}
- {{ $svc }}
- {{ printf "%s.%s" $svc $ns }}
- {{ printf "%s.%s.svc" $svc $ns }}
- {{ printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain }}
{{- end }}

{{/*
The issuer: config.issuer when set, else the token-server Service's in-cluster URL,
http or https according to tokenServer.tls.enabled (the port is left out when it is the
scheme's default).
*/}}
{{- define "oauth-client-operator.issuer" -}}
{{- if .Values.config.issuer }}
{{- .Values.config.issuer | trimSuffix "/" }}
{{- else }}
{{- $scheme := ternary "https" "http" .Values.tokenServer.tls.enabled }}
{{- $port := int .Values.service.port }}
{{- $host := printf "%s.%s.svc" (include "oauth-client-operator.fullname" .) .Release.Namespace }}
{{- if or (and .Values.tokenServer.tls.enabled (eq $port 443)) (and (not .Values.tokenServer.tls.enabled) (eq $port 80)) }}
{{- printf "%s://%s" $scheme $host }}
{{- else }}
{{- printf "%s://%s:%d" $scheme $host $port }}
{{- end }}
{{- end }}
{{- end }}

{{/* Where the config file and the TLS files are mounted. */}}
{{- define "oauth-client-operator.configDir" -}}/etc/oauth-client-operator{{- end }}
{{- define "oauth-client-operator.tlsDir" -}}/etc/oauth-client-operator/tls{{- end }}

{{/* The operator's config file (internal/config), from values. */}}
{{- define "oauth-client-operator.config" -}}
issuer: {{ include "oauth-client-operator.issuer" . | quote }}
tokenServer:
  address: {{ printf ":%d" (int .Values.tokenServer.port) | quote }}
  {{- if .Values.tokenServer.tls.enabled }}
  tls:
    certFile: {{ printf "%s/tls.crt" (include "oauth-client-operator.tlsDir" .) }}
    keyFile: {{ printf "%s/tls.key" (include "oauth-client-operator.tlsDir" .) }}
  {{- end }}
  maxBodyBytes: {{ int64 .Values.tokenServer.maxBodyBytes }}
  readHeaderTimeout: {{ .Values.tokenServer.readHeaderTimeout | quote }}
  readTimeout: {{ .Values.tokenServer.readTimeout | quote }}
  writeTimeout: {{ .Values.tokenServer.writeTimeout | quote }}
  idleTimeout: {{ .Values.tokenServer.idleTimeout | quote }}
  shutdownTimeout: {{ .Values.tokenServer.shutdownTimeout | quote }}
  jwksMaxAge: {{ .Values.tokenServer.jwksMaxAge | quote }}
  apiServerGrace: {{ .Values.tokenServer.apiServerGrace | quote }}
  maxConnections: {{ .Values.tokenServer.maxConnections }}
tokens:
  defaultTTL: {{ .Values.config.tokens.defaultTTL | quote }}
  maxTTL: {{ .Values.config.tokens.maxTTL | quote }}
signing:
  algorithm: {{ .Values.config.signing.algorithm | quote }}
  secretName: {{ .Values.config.signing.secretName | quote }}
  rotationInterval: {{ .Values.config.signing.rotationInterval | quote }}
  propagationDelay: {{ .Values.config.signing.propagationDelay | quote }}
rateLimit:
  failedAuthPerMinute: {{ int64 .Values.config.rateLimit.failedAuthPerMinute }}
  failedAuthBurst: {{ int64 .Values.config.rateLimit.failedAuthBurst }}
  maxTrackedKeys: {{ int64 .Values.config.rateLimit.maxTrackedKeys }}
workloadIdentity:
  issuer: {{ .Values.config.workloadIdentity.issuer | quote }}
  maxTokenLifetime: {{ .Values.config.workloadIdentity.maxTokenLifetime | quote }}
{{- end }}
