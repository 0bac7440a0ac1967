// The deployable files: the CRDs under deploy/ are exactly what the generator makes of the TypeBox
// schemas; the Helm chart renders to the committed plain manifests (with the pinned helm, built
// from its Go module by scripts/toolchain/helm.sh and cached by version); and the plain manifests
// (and the chart's default rendering) pass `kubectl apply --dry-run=server` on a real
// kube-apiserver, with the CRDs applied for real.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { crdsYaml } from '../../src/cli/commands/crds.js';
import { ComponentMissingError, resolveHelm } from '../../src/toolchain/components.js';
import { ROOT } from '../support/marina.js';
import { ensureHelm } from '../toolchain/ensure.js';
import { startControlPlane, type ControlPlane } from '../toolchain/controlplane.js';
import { toolchainOrSkip } from './management.js';

const run = promisify(execFile);
const deploy = (...p: string[]) => join(ROOT, 'deploy', ...p);

/**
 * The pinned helm (scripts/toolchain/helm.sh builds it the first time, a few minutes); a skip
 * reason only when it is not cached and there is no Go to build it with.
 */
async function pinnedHelm(): Promise<{ helm?: string; skip?: string }> {
  try {
    return { helm: resolveHelm().helm };
  } catch (err) {
    if (!(err instanceof ComponentMissingError)) throw err;
  }
  try {
    await run('go', ['version']);
  } catch {
    return { skip: 'helm is not cached and Go is not installed to build it (scripts/toolchain/helm.sh)' };
  }
  return { helm: (await ensureHelm()).helm };
}

describe('deployable files', () => {
  test('the CRDs in deploy/ are the ones generated from the schemas (scripts/ha/render-manifests.sh)', () => {
    const generated = crdsYaml();
    assert.equal(readFileSync(deploy('manifests', 'crds.yaml'), 'utf8'), generated);
    assert.equal(readFileSync(deploy('helm', 'marina', 'crds', 'crds.yaml'), 'utf8'), generated);
  });

  test('the chart renders to the committed plain manifests', { timeout: 900_000 }, async (t) => {
    const { helm, skip } = await pinnedHelm();
    if (!helm) return t.skip(skip);
    const { stdout } = await run(helm, ['template', 'marina', deploy('helm', 'marina'), '--namespace', 'marina', '--set', 'encryption.existingSecret=marina-encryption-key']);
    const committed = readFileSync(deploy('manifests', 'marina.yaml'), 'utf8').split('\n').filter((l) => !l.startsWith('# Rendered') && !l.startsWith('# Needs')).join('\n');
    assert.equal(committed, stdout);
  });
});

const tc = toolchainOrSkip();

describe('deployable files against a real API server', { skip: tc.skip }, () => {
  let cp: ControlPlane;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'marina-manifests-'));
    cp = await startControlPlane({ toolchain: tc.toolchain!, dir, components: ['etcd', 'kube-apiserver'] });
    await cp.kubectl(['apply', '-f', deploy('manifests', 'namespace.yaml')]);
    await cp.kubectl(['apply', '--server-side', '-f', deploy('manifests', 'crds.yaml')]);
    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '-l', 'app.kubernetes.io/part-of=marina']);
  });
  after(async () => {
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the plain manifests pass kubectl apply --dry-run=server', async () => {
    const out = await cp.kubectl(['apply', '--dry-run=server', '-f', deploy('manifests', 'marina.yaml')]);
    for (const kind of ['serviceaccount/marina', 'role.rbac.authorization.k8s.io/marina', 'deployment.apps/marina', 'service/marina', 'poddisruptionbudget.policy/marina']) {
      assert.match(out, new RegExp(`${kind.replaceAll('.', '\\.')} created \\(server dry run\\)`), out);
    }
  });

  test('the chart with its defaults (a generated encryption key) passes kubectl apply --dry-run=server', { timeout: 900_000 }, async (t) => {
    const { helm, skip } = await pinnedHelm();
    if (!helm) return t.skip(skip);
    const { stdout } = await run(helm, ['template', 'ha', deploy('helm', 'marina'), '--namespace', 'marina', '--set', 'replicaCount=3']);
    assert.match(stdout, /kind: Secret[\s\S]*helm\.sh\/resource-policy: keep/);
    const file = join(dir, 'chart.yaml');
    writeFileSync(file, stdout);
    const out = await cp.kubectl(['apply', '--dry-run=server', '-f', file]);
    assert.match(out, /secret\/ha-marina-encryption-key created \(server dry run\)/);
    assert.match(out, /deployment\.apps\/ha-marina created \(server dry run\)/);
  });
});
