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

{{- define "workspace-gate.sshServiceName" -}}
{{- printf "%s-ssh" (include "workspace-gate.fullname" .) | trunc 63 | trimSuffix "-" }}
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

{{/* SSH gateway: where its host keys, backend key and known_hosts come from. */}}
{{- define "workspace-gate.sshHostKeysSecretName" -}}
{{- if .Values.ssh.hostKeys.existingSecret }}
{{- .Values.ssh.hostKeys.existingSecret }}
{{- else }}
{{- printf "%s-ssh-host-keys" (include "workspace-gate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Entries of the host-key Secret, as a JSON list: `ssh.hostKeys.existingSecretKeys`
of an existing Secret, or the names of `ssh.hostKeys.keys` (sorted) for the
chart's own. Neither fails the render: a key generated here would differ
between renders, and so between upgrades, and clients would refuse it.
*/}}
{{- define "workspace-gate.sshHostKeyEntries" -}}
{{- $hk := .Values.ssh.hostKeys }}
{{- if $hk.existingSecret }}
{{- toJson $hk.existingSecretKeys }}
{{- else if $hk.keys }}
{{- toJson (keys $hk.keys | sortAlpha) }}
{{- else }}
{{- fail (printf "ssh.enabled needs a host key, and the chart does not generate one: every replica must offer the same key, and a key made anew on each upgrade would break your users' known_hosts. Create it once and keep it:\n  workspace-gate keygen --ssh > host_ed25519 && kubectl -n %s create secret generic workspace-gate-ssh-host-keys --from-file=host_ed25519\nthen set ssh.hostKeys.existingSecret=workspace-gate-ssh-host-keys (or put the key in ssh.hostKeys.keys, e.g. --set-file ssh.hostKeys.keys.host_ed25519=host_ed25519)." .Release.Namespace) }}
{{- end }}
{{- end }}

{{/*
The known_hosts lines for the workspaces' sshd, as JSON: {kind, name, key}
of the ConfigMap or Secret holding them (the chart's own ConfigMap for
`ssh.backendKnownHosts`), or {} for none.
*/}}
{{- define "workspace-gate.sshKnownHostsSource" -}}
{{- $from := .Values.ssh.backendKnownHostsFrom }}
{{- if .Values.ssh.backendKnownHosts }}
{{- toJson (dict "kind" "configMap" "name" (include "workspace-gate.fullname" .) "key" "ssh_known_hosts") }}
{{- else if $from.configMap }}
{{- toJson (dict "kind" "configMap" "name" $from.configMap "key" $from.key) }}
{{- else if $from.secret }}
{{- toJson (dict "kind" "secret" "name" $from.secret "key" $from.key) }}
{{- else }}
{{- toJson dict }}
{{- end }}
{{- end }}

{{/* Paths inside the container. */}}
{{- define "workspace-gate.configDir" -}}/etc/workspace-gate{{- end }}
{{- define "workspace-gate.oidcDir" -}}/etc/workspace-gate/oidc{{- end }}
{{- define "workspace-gate.keysDir" -}}/etc/workspace-gate/keys{{- end }}
{{- define "workspace-gate.checkTlsDir" -}}/etc/workspace-gate/check-tls{{- end }}
{{- define "workspace-gate.sshHostKeysDir" -}}/etc/workspace-gate/ssh/host-keys{{- end }}
{{- define "workspace-gate.sshBackendKeyDir" -}}/etc/workspace-gate/ssh/backend-key{{- end }}
{{- define "workspace-gate.sshKnownHostsDir" -}}/etc/workspace-gate/ssh/known-hosts{{- end }}

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
{{- if $v.ssh.enabled -}}
{{- $pairs := list -}}
{{- range $k, $val := (include "workspace-gate.selectorLabels" . | fromYaml) }}{{ $pairs = append $pairs (printf "%s=%s" $k $val) }}{{ end -}}
{{- $_ := set $np "gate_pod_labels" (join "," $pairs) -}}
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
{{- if $v.ssh.enabled -}}
{{- $hostKeyFiles := list -}}
{{- range (include "workspace-gate.sshHostKeyEntries" . | fromJsonArray) -}}
{{- $hostKeyFiles = append $hostKeyFiles (printf "%s/%s" (include "workspace-gate.sshHostKeysDir" $) .) -}}
{{- end -}}
{{- $ssh := dict
  "host_key_files" $hostKeyFiles
  "backend_user" $v.ssh.backendUser
  "idle_timeout" $v.ssh.idleTimeout
  "max_session" $v.ssh.maxSession
  "recheck_interval" $v.ssh.recheckInterval
  "key_cache_ttl" $v.ssh.keyCacheTtl
  "allow_agent_forwarding" $v.ssh.allowAgentForwarding
  "allow_remote_forwarding" $v.ssh.allowRemoteForwarding -}}
{{- if $v.ssh.backendKey.existingSecret -}}
{{- $_ := set $ssh "backend_key_file" (printf "%s/%s" (include "workspace-gate.sshBackendKeyDir" .) $v.ssh.backendKey.existingSecretKey) -}}
{{- end -}}
{{- with (include "workspace-gate.sshKnownHostsSource" . | fromJson) -}}
{{- $_ := set $ssh "backend_known_hosts_file" (printf "%s/%s" (include "workspace-gate.sshKnownHostsDir" $) .key) -}}
{{- end -}}
{{- $_ := set $config.listen "ssh" (printf "0.0.0.0:%d" (int $v.ssh.containerPort)) -}}
{{- $_ := set $config "ssh" $ssh -}}
{{- $_ := set $routing "ssh_port" (int $v.ssh.workspacePort) -}}
{{- /* The gate reaches each workspace's sshd at <service>.<namespace>.svc.<cluster domain>; mode none renders no gate_service otherwise. */ -}}
{{- if not (hasKey $routing "gate_service") -}}
{{- $_ := set $routing "gate_service" (dict "cluster_domain" $v.clusterDomain) -}}
{{- end -}}
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
