// `marina crds`: prints the CustomResourceDefinitions of the Kubernetes-backed store (generated from
// the same schemas that validate the API), for `kubectl apply --server-side -f -` by an operator
// who does not let Marina install them itself.
import { Command } from 'commander';
import { stringify } from 'yaml';
import { allCrds } from '../../store/kubernetes/crd.js';
import { out } from '../session.js';

/** The CRDs as one multi-document YAML stream. */
export function crdsYaml(): string {
  return allCrds()
    .map((crd) => stringify(crd, { lineWidth: 0 }))
    .join('---\n');
}

export function crdsCommand(): Command {
  return new Command('crds')
    .description('print the CustomResourceDefinitions that `marina server --store kubernetes` needs (YAML)')
    .action(() => {
      out(crdsYaml());
    });
}
