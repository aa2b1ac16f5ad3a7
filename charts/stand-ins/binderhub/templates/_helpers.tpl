{{- /* Labels of the stand-in's objects, in the style of the real chart. */ -}}
{{- define "binderhub.labels" -}}
app.kubernetes.io/name: binderhub
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: binder
helm.sh/chart: binderhub-{{ .Chart.Version }}
{{- end }}

{{- define "binderhub.selector" -}}
app.kubernetes.io/name: binderhub
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: binder
{{- end }}
