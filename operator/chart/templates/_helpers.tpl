{{- define "stash.labels" -}}
app.kubernetes.io/name: stash-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "stash.selector" -}}
app.kubernetes.io/name: stash-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "stash.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
