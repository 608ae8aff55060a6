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
  maxConnectionsPerAddress: {{ .Values.tokenServer.maxConnectionsPerAddress }}
  trustedProxies: {{ .Values.tokenServer.trustedProxies | default list | toJson }}
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
privateKeyJWT:
  maxAssertionLifetime: {{ .Values.config.privateKeyJWT.maxAssertionLifetime | quote }}
  replayCacheSize: {{ int64 .Values.config.privateKeyJWT.replayCacheSize }}
dpop:
  proofMaxAge: {{ .Values.config.dpop.proofMaxAge | quote }}
  replayCacheSize: {{ int64 .Values.config.dpop.replayCacheSize }}
audit:
  enabled: {{ .Values.config.audit.enabled }}
  successSampleRate: {{ .Values.config.audit.successSampleRate }}
  refusalsPerSecond: {{ int64 .Values.config.audit.refusalsPerSecond }}
clients:
  rotateSecretMinInterval: {{ .Values.config.clients.rotateSecretMinInterval | quote }}
{{- end }}

{{/*
A Go duration (values.schema.json's "duration": 90s, 10m, 1h30m, 1.5h, 500ms) in seconds,
printed with three decimals. Sprig has no duration parser; this sums the number of every
unit term.
*/}}
{{- define "oauth-client-operator.durationSeconds" -}}
{{- $unit := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" . -1 }}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" . }}
{{- $total = addf $total (mulf (float64 $n) (get $unit (trimPrefix $n .))) }}
{{- end }}
{{- printf "%.3f" (float64 $total) }}
{{- end }}

{{/*
The PromQL label matchers that select this release's series: prometheusRule.selector, or
the labels a scrape through the chart's ServiceMonitor gives them (job is the metrics
Service's name).
*/}}
{{- define "oauth-client-operator.metricsSelector" -}}
{{- if .Values.prometheusRule.selector }}
{{- .Values.prometheusRule.selector }}
{{- else }}
{{- printf "job=%q, namespace=%q" (printf "%s-metrics" (include "oauth-client-operator.fullname" .)) .Release.Namespace }}
{{- end }}
{{- end }}
