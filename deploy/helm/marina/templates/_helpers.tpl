{{- define "marina.name" -}}marina{{- end -}}

{{- define "marina.fullname" -}}
{{- if contains "marina" .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-marina" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "marina.labels" -}}
app.kubernetes.io/name: marina
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: marina
{{- end -}}

{{- define "marina.selectorLabels" -}}
app.kubernetes.io/name: marina
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "marina.encryptionSecret" -}}
{{- if .Values.encryption.existingSecret -}}{{ .Values.encryption.existingSecret }}{{- else -}}{{ include "marina.fullname" . }}-encryption-key{{- end -}}
{{- end -}}
