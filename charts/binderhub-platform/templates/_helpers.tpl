{{- /* Labels and the service -> upstream Service table shared by the application chart's templates. */ -}}

{{- /* Every object this chart creates: that it is the console's, and which platform it belongs to.
Not app.kubernetes.io/managed-by: Helm sets that to "Helm" on every object it installs, whatever the
template says (pkg/action/validate.go setMetadataVisitor). */ -}}
{{- define "binderhub-platform.labels" -}}
app.kubernetes.io/part-of: binderadmin
binderadmin.io/platform: {{ .Values.platform.name | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{- end }}

{{- /* The objects that expose one service; call with (dict "root" $ "service" "binderhub"). */ -}}
{{- define "binderhub-platform.serviceLabels" -}}
{{ include "binderhub-platform.labels" .root }}
binderadmin.io/service: {{ .service | quote }}
{{- end }}

{{- /* The Azimuth annotations a console reads the service's label, icon and description from. */ -}}
{{- define "binderhub-platform.serviceAnnotations" -}}
{{- $meta := index .root.Values.platform.services .service -}}
azimuth.stackhpc.com/service-label: {{ $meta.label | quote }}
azimuth.stackhpc.com/service-icon-url: {{ $meta.iconUrl | quote }}
azimuth.stackhpc.com/service-description: {{ $meta.description | quote }}
{{- end }}

{{- /* Each exposed service and the Kubernetes Service (port 80) that serves it, made by the subcharts. */ -}}
{{- define "binderhub-platform.upstreams" -}}
binderhub: binder
jupyterhub: proxy-public
{{- end }}
