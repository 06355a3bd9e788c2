{{/* The release's full name, a DNS label of at most 63 characters. */}}
{{- define "hookwarden.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the operator's pods; they never change across upgrades. */}}
{{- define "hookwarden.selectorLabels" -}}
app.kubernetes.io/name: hookwarden-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The standard labels of every object of the chart. */}}
{{- define "hookwarden.labels" -}}
{{ include "hookwarden.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: hookwarden
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "hookwarden.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "hookwarden.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The watched namespaces, comma-separated, sorted, each once: watchNamespaces
plus the older single watchNamespace. Empty: all namespaces.
*/}}
{{- define "hookwarden.watchNamespaces" -}}
{{- $namespaces := .Values.watchNamespaces | default list -}}
{{- with .Values.watchNamespace }}{{ $namespaces = append $namespaces . }}{{ end -}}
{{- $namespaces | uniq | sortAlpha | join "," -}}
{{- end -}}

{{- define "hookwarden.operatorImage" -}}
{{- printf "%s:%s" .Values.image.operator.repository (default .Chart.AppVersion .Values.image.operator.tag) -}}
{{- end -}}

{{- define "hookwarden.receiverImage" -}}
{{- printf "%s:%s" .Values.image.receiver.repository (default .Chart.AppVersion .Values.image.receiver.tag) -}}
{{- end -}}

{{/*
The namespaced rights of the operator, derived from operator/src: the same
rules go into a ClusterRole (all namespaces) or a Role (one namespace).
Deliberately no "*". Children go with their owner through the garbage
collector; the operator deletes only the children a spec stops wanting
(optional ones, and an endpoint's receivers once a pool serves it).
*/}}
{{- define "hookwarden.namespacedRules" -}}
# The Controller lists and watches endpoints (reconcile/mod.rs, Controller::new);
# a subscription's pass reads its source endpoint (reconcile/subscription.rs).
- apiGroups: ["hookwarden.dev"]
  resources: ["webhookendpoints"]
  verbs: ["get", "list", "watch"]
# The pools' controller lists and watches them; an endpoint's pass reads
# the pool it names (reconcile/pool.rs).
- apiGroups: ["hookwarden.dev"]
  resources: ["webhookreceiverpools"]
  verbs: ["get", "list", "watch"]
# The subscriptions' controller lists and watches them, and patches
# metadata.finalizers (the finalizer that removes a deleted subscription's
# JetStream consumer).
- apiGroups: ["hookwarden.dev"]
  resources: ["webhooksubscriptions"]
  verbs: ["list", "watch", "patch"]
# write_status: server-side apply on the status subresource.
- apiGroups: ["hookwarden.dev"]
  resources: ["webhookendpoints/status", "webhooksubscriptions/status", "webhookreceiverpools/status"]
  verbs: ["patch"]
# Children carry ownerReferences with blockOwnerDeletion: true; clusters with
# the OwnerReferencesPermissionEnforcement admission plugin require update on
# the owner's finalizers for that.
- apiGroups: ["hookwarden.dev"]
  resources: ["webhookendpoints/finalizers", "webhooksubscriptions/finalizers", "webhookreceiverpools/finalizers"]
  verbs: ["update"]
# Children are server-side applied (patch; a first apply creates, which the
# API server authorizes as create); owns() list+watch them; deployments are
# read by get in observe_receiver, user Secrets by get in secrets::resolve,
# a subscription's rendered Secret by get (where its consumer lives), and
# its generated signing Secret created once. An endpoint that joins a pool
# has its own receivers (Deployment, Service, rendered Secret,
# NetworkPolicy) deleted by name once the pool serves it (reconcile/mod.rs
# prune_dedicated): delete, and get to check it controls them first.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# kube-runtime's Recorder: creates an Event, patches it when it repeats.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# The NetworkPolicy is always applied and owned (watched).
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Optional children (reconcile/mod.rs apply_or_prune; a forwarder's budget
# in reconcile/subscription.rs): applied when the spec asks for them, and deleted (after a list by label, only when the endpoint
# controls them) when it no longer does; the garbage collector cannot know
# that a spec stopped wanting a child.
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["cert-manager.io"]
  resources: ["certificates"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end -}}
