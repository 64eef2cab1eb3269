{{/* Names */}}
{{- define "workspace-gate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "workspace-gate.fullname" -}}
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

{{- define "workspace-gate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "workspace-gate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "workspace-gate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of an object, from a list: the root context, then maps of labels laid
over the chart's own in order (commonLabels first). The selector labels are
laid last, so no value can change what the Deployment, the Services and the
ServiceMonitor select; the schema refuses them in commonLabels and podLabels
so the attempt is not silently ignored.
*/}}
{{- define "workspace-gate.labelsWith" -}}
{{- $root := first . -}}
{{- $labels := dict
  "helm.sh/chart" (include "workspace-gate.chart" $root)
  "app.kubernetes.io/version" (toString $root.Chart.AppVersion)
  "app.kubernetes.io/managed-by" $root.Release.Service
  "app.kubernetes.io/part-of" "workspace-gate" -}}
{{- range rest . }}{{ $labels = mustMergeOverwrite $labels (deepCopy (default dict .)) }}{{ end -}}
{{- $labels = mustMergeOverwrite $labels (include "workspace-gate.selectorLabels" $root | fromYaml) -}}
{{- toYaml $labels }}
{{- end }}

{{/* Labels of every object the chart renders. */}}
{{- define "workspace-gate.labels" -}}
{{- include "workspace-gate.labelsWith" (list . .Values.commonLabels) }}
{{- end }}

{{- define "workspace-gate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "workspace-gate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "workspace-gate.adminServiceName" -}}
{{- printf "%s-admin" (include "workspace-gate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The auth host: authHost, or the workspace domain itself. */}}
{{- define "workspace-gate.authHost" -}}
{{- default .Values.workspaceDomain .Values.authHost | lower }}
{{- end }}

{{/* IngressClass of workspace Ingresses: explicit, or the mode's usual class. */}}
{{- define "workspace-gate.ingressClass" -}}
{{- if .Values.routing.ingressClass }}
{{- .Values.routing.ingressClass }}
{{- else if eq .Values.routing.mode "ingress-nginx" }}
{{- "nginx" }}
{{- else if eq .Values.routing.mode "traefik" }}
{{- "traefik" }}
{{- end }}
{{- end }}

{{/* IngressClass of the auth-host Ingress. */}}
{{- define "workspace-gate.authIngressClass" -}}
{{- default (include "workspace-gate.ingressClass" .) .Values.authIngress.className }}
{{- end }}

{{/* session.transfer: explicit, else `fragment`, which every routing mode's controller carries. */}}
{{- define "workspace-gate.transfer" -}}
{{- default "fragment" .Values.session.transfer }}
{{- end }}

{{/* RBAC scope for the workspace permissions: cluster or namespaced. */}}
{{- define "workspace-gate.rbacScope" -}}
{{- if .Values.rbac.scope }}
{{- .Values.rbac.scope }}
{{- else if .Values.discovery.namespaces }}
{{- "namespaced" }}
{{- else }}
{{- "cluster" }}
{{- end }}
{{- end }}

{{- define "workspace-gate.leaseName" -}}
{{- default (printf "%s-leader" (include "workspace-gate.fullname" .)) .Values.discovery.leaseName | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Secrets: which Secret and which entries the pod mounts. */}}
{{- define "workspace-gate.oidcSecretName" -}}
{{- if .Values.oidc.existingSecret }}
{{- .Values.oidc.existingSecret }}
{{- else }}
{{- printf "%s-oidc" (include "workspace-gate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "workspace-gate.keysSecretName" -}}
{{- if .Values.keys.existingSecret }}
{{- .Values.keys.existingSecret }}
{{- else }}
{{- printf "%s-keys" (include "workspace-gate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Entries of the keys Secret, in signing order, as a JSON list. For a
chart-created Secret: key-0 (signs), key-1, ...; a generated key is key-0.
*/}}
{{- define "workspace-gate.keyEntries" -}}
{{- if .Values.keys.existingSecret }}
{{- toJson .Values.keys.existingSecretKeys }}
{{- else if .Values.keys.signingKeys }}
{{- $out := list }}
{{- range $i, $_ := .Values.keys.signingKeys }}
{{- $out = append $out (printf "key-%d" $i) }}
{{- end }}
{{- toJson $out }}
{{- else }}
{{- toJson (list "key-0") }}
{{- end }}
{{- end }}

{{/* Paths inside the container. */}}
{{- define "workspace-gate.configDir" -}}/etc/workspace-gate{{- end }}
{{- define "workspace-gate.oidcDir" -}}/etc/workspace-gate/oidc{{- end }}
{{- define "workspace-gate.keysDir" -}}/etc/workspace-gate/keys{{- end }}
{{- define "workspace-gate.checkTlsDir" -}}/etc/workspace-gate/check-tls{{- end }}

{{/* The gate's configuration file (config.yaml), from values. */}}
{{- define "workspace-gate.config" -}}
{{- $v := .Values -}}
{{- $keyFiles := list -}}
{{- range (include "workspace-gate.keyEntries" . | fromJsonArray) -}}
{{- $keyFiles = append $keyFiles (printf "%s/%s" (include "workspace-gate.keysDir" $) .) -}}
{{- end -}}
{{- $discovery := dict
  "lease_name" (include "workspace-gate.leaseName" .)
  "lease_namespace" .Release.Namespace
  "lease_duration" $v.discovery.leaseDuration
  "resync_interval" $v.discovery.resyncInterval -}}
{{- with $v.discovery.namespaces }}{{ $_ := set $discovery "namespaces" . }}{{ end -}}
{{- with $v.discovery.namespaceSelector }}{{ $_ := set $discovery "namespace_selector" . }}{{ end -}}
{{- with $v.discovery.ownerIdAnnotation }}{{ $_ := set $discovery "owner_id_annotation" . }}{{ end -}}
{{- with $v.discovery.ownerUsernameAnnotation }}{{ $_ := set $discovery "owner_username_annotation" . }}{{ end -}}
{{- $np := dict "enabled" $v.discovery.networkPolicy.enabled -}}
{{- with $v.discovery.networkPolicy.controllerNamespace }}{{ $_ := set $np "controller_namespace" . }}{{ end -}}
{{- with $v.discovery.networkPolicy.controllerPodLabels -}}
{{- $pairs := list -}}
{{- range $k, $val := . }}{{ $pairs = append $pairs (printf "%s=%s" $k $val) }}{{ end -}}
{{- $_ := set $np "controller_pod_labels" (join "," $pairs) -}}
{{- end -}}
{{- $_ := set $discovery "network_policy" $np -}}
{{- $routing := dict "mode" $v.routing.mode -}}
{{- if ne $v.routing.mode "none" -}}
{{- $_ := set $routing "gate_service" (dict
  "name" (include "workspace-gate.fullname" .)
  "namespace" .Release.Namespace
  "http_port" (int $v.ports.http)
  "grpc_port" (int $v.ports.grpc)
  "cluster_domain" $v.clusterDomain) -}}
{{- if $v.checkTls.secretName -}}
{{- $_ := set $routing.gate_service "https_port" (int $v.checkTls.port) -}}
{{- with $v.checkTls.caSecret }}{{ $_ := set $routing "traefik_ca_secret" . }}{{ end -}}
{{- end -}}
{{- end -}}
{{- if has $v.routing.mode (list "ingress-nginx" "traefik") -}}
{{- $_ := set $routing "ingress_class" (include "workspace-gate.ingressClass" .) -}}
{{- with $v.routing.tlsSecret }}{{ $_ := set $routing "tls_secret" . }}{{ end -}}
{{- if and (eq $v.routing.mode "ingress-nginx") $v.routing.authKeepalive }}{{ $_ := set $routing "auth_keepalive" (int $v.routing.authKeepalive) }}{{ end -}}
{{- end -}}
{{- if eq $v.routing.mode "gateway-api" -}}
{{- $gw := dict "name" $v.routing.gateway.name "namespace" $v.routing.gateway.namespace -}}
{{- with $v.routing.gateway.sectionName }}{{ $_ := set $gw "section_name" . }}{{ end -}}
{{- $_ := set $routing "gateway" $gw -}}
{{- end -}}
{{- $authz := dict "mode" $v.authorization.mode "cache_ttl" $v.authorization.cacheTtl -}}
{{- with $v.authorization.gitlabUrl }}{{ $_ := set $authz "gitlab_url" . }}{{ end -}}
{{- $config := dict
  "auth_host" (include "workspace-gate.authHost" .)
  "workspace_domain" ($v.workspaceDomain | lower)
  "public_scheme" "https"
  "listen" (dict
    "http" (printf "0.0.0.0:%d" (int $v.ports.http))
    "grpc" (printf "0.0.0.0:%d" (int $v.ports.grpc))
    "admin" (printf "0.0.0.0:%d" (int $v.ports.admin)))
  "oidc" (dict
    "issuer" $v.oidc.issuer
    "client_id" $v.oidc.clientId
    "client_secret_file" (printf "%s/%s" (include "workspace-gate.oidcDir" .) $v.oidc.existingSecretKey)
    "scopes" $v.oidc.scopes
    "username_claim" $v.oidc.usernameClaim)
  "keys" (dict "files" $keyFiles)
  "session" (dict
    "pass_ttl" $v.session.passTtl
    "login_ttl" $v.session.loginTtl
    "transfer" (include "workspace-gate.transfer" .))
  "workspaces" (dict "source" "kubernetes")
  "authorization" $authz
  "discovery" $discovery
  "routing" $routing
  "log" (dict "format" $v.log.format "level" $v.log.level) -}}
{{- if $v.publicPort }}{{ $_ := set $config "public_port" (int $v.publicPort) }}{{ end -}}
{{- if $v.checkTls.secretName -}}
{{- $_ := set $config.listen "https" (printf "0.0.0.0:%d" (int $v.checkTls.port)) -}}
{{- $_ := set $config "tls" (dict
  "cert_file" (printf "%s/tls.crt" (include "workspace-gate.checkTlsDir" .))
  "key_file" (printf "%s/tls.key" (include "workspace-gate.checkTlsDir" .))) -}}
{{- end -}}
{{- $config = mustMergeOverwrite $config (deepCopy $v.extraConfig) -}}
{{- toYaml $config }}
{{- end }}

{{/* https://<auth host>[:<public port>] as browsers see it. */}}
{{- define "workspace-gate.authOrigin" -}}
{{- $port := int (default 443 .Values.publicPort) }}
{{- if eq $port 443 }}
{{- printf "https://%s" (include "workspace-gate.authHost" .) }}
{{- else }}
{{- printf "https://%s:%d" (include "workspace-gate.authHost" .) $port }}
{{- end }}
{{- end }}
