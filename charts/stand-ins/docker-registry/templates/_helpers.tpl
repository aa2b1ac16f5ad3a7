{{- /* Name and labels of the registry's objects: `<release>-docker-registry`, as twuni's chart names them. */ -}}
{{- define "docker-registry.fullname" -}}
{{ .Release.Name }}-docker-registry
{{- end }}

{{- define "docker-registry.labels" -}}
app.kubernetes.io/name: docker-registry
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: docker-registry-{{ .Chart.Version }}
{{- end }}

{{- define "docker-registry.selector" -}}
app.kubernetes.io/name: docker-registry
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
