{{- /* Labels of the stand-in's objects, in the style of the real chart (component per object). */ -}}
{{- define "jupyterhub.labels" -}}
app.kubernetes.io/name: jupyterhub
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
helm.sh/chart: jupyterhub-{{ .root.Chart.Version }}
{{- end }}

{{- define "jupyterhub.selector" -}}
app.kubernetes.io/name: jupyterhub
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
