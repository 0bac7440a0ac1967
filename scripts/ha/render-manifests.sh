#!/usr/bin/env bash
# Regenerates the deployable files from their sources (test/ha/manifests.test.ts checks they match):
#   deploy/manifests/crds.yaml and deploy/helm/marina/crds/crds.yaml  <- `marina crds` (the TypeBox schemas)
#   deploy/manifests/marina.yaml                                       <- `helm template` of the chart
# Needs a build (npx tsc -p tsconfig.json). helm is the pinned one from scripts/toolchain/helm.sh
# (built from its Go module on first use, then cached by version), unless HELM=/path/to/helm.
set -euo pipefail
cd "$(dirname "$0")/../.."
HELM=${HELM:-$(scripts/toolchain/helm.sh | cut -f2)/helm}
node bin/marina.js crds > deploy/manifests/crds.yaml
cp deploy/manifests/crds.yaml deploy/helm/marina/crds/crds.yaml
{
  echo '# Rendered from deploy/helm/marina by scripts/ha/render-manifests.sh; do not edit.'
  echo '# Needs the namespace (namespace.yaml), the CRDs (crds.yaml) and the Secret marina-encryption-key.'
  "$HELM" template marina deploy/helm/marina --namespace marina --set encryption.existingSecret=marina-encryption-key
} > deploy/manifests/marina.yaml
echo "rendered deploy/manifests/{crds,marina}.yaml and the chart's crds/"
