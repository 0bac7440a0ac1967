import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkPlaceholders, parseManifests, renderDoc, RenderError, type RenderContext } from './template.js';

const ctx = (values: Record<string, unknown> = {}): RenderContext => ({
  values,
  cluster: { name: 'demo', project: 'p', dnsIP: '10.96.0.10', domain: 'cluster.local', serviceCIDR: '10.96.0.0/16', podCIDR: '10.244.0.0/16', kubernetesVersion: 'v1.36.3' },
  addon: { name: 'x', version: '1.0.0', namespace: 'kube-system' },
});

const parse = (content: string) => parseManifests([{ file: 'm.yaml', content }]);

test('placeholders are replaced after parsing: whole plain scalars keep the value\'s type, quoted ones are strings', () => {
  const { template, causes } = parse(`
apiVersion: v1
kind: ConfigMap
metadata:
  name: \${addon.name}-config
data:
  count: "\${values.n}"
  text: |
    forward . \${values.upstream}
    literal $\${values.n} stays
    shell \${HOME} stays
spec:
  replicas: \${values.n}
  tolerations: \${values.tolerations}
  dns: \${cluster.dnsIP}
`);
  assert.deepEqual(causes, []);
  const out = renderDoc(template.docs[0]!, ctx({ n: 3, upstream: '1.1.1.1', tolerations: [{ operator: 'Exists' }] }));
  assert.deepEqual(out, {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'x-config' },
    data: { count: '3', text: 'forward . 1.1.1.1\nliteral ${values.n} stays\nshell ${HOME} stays\n' },
    spec: { replicas: 3, tolerations: [{ operator: 'Exists' }], dns: '10.96.0.10' },
  });
});

test('a value cannot change the structure: YAML in a value stays a string', () => {
  const { template } = parse('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: "${values.v}"\n');
  const out = renderDoc(template.docs[0]!, ctx({ v: 'x\nevil: true\n---\nkind: Secret' }));
  assert.deepEqual(out.data, { k: 'x\nevil: true\n---\nkind: Secret' });
  assert.equal(Object.keys(out).length, 4);
});

test('an unset whole-scalar value drops its entry; inside text it is an error', () => {
  // Block style: inside [ ] and { } the braces of a placeholder are YAML syntax (quote it there).
  const { template, causes } = parse('apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  nodeSelector: ${values.sel}\n  list:\n    - a\n    - "${values.missing}"\n    - ${values.gone}\n');
  assert.deepEqual(causes, []);
  const doc = template.docs[0]!;
  assert.throws(() => renderDoc(doc, ctx({})), (e: unknown) => e instanceof RenderError && /values.missing\} is not set/.test((e as Error).message));
  const out = renderDoc(doc, ctx({ missing: 'm' }));
  assert.deepEqual(out.spec, { list: ['a', 'm'] });
});

test('parse errors name the file, the document and the line; every document must be an object with apiVersion, kind, metadata.name', () => {
  const cases: [string, RegExp][] = [
    ['apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  bad: [unclosed\n', /m\.yaml document 1: .*(Flow sequence|flow|Missing|end)/i],
    ['apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\n- just\n- a list\n', /m\.yaml document 2: must be a Kubernetes object/],
    ['kind: A\nmetadata: {name: a}\n', /apiVersion must be a literal/],
    ['apiVersion: v1\nkind: A\nmetadata: {labels: {}}\n', /metadata.name is required/],
    ['apiVersion: v1\nkind: A\nmetadata: {name: a}\ndata: {k: 1, k: 2}\n', /(duplicate|unique)/i],
    ['apiVersion: v1\nkind: A\nmetadata: {name: a}\ndata: {"${values.k}": 1}\n', /not allowed in keys/],
    ['apiVersion: v1\nkind: A\nmetadata: {name: a}\ndata: {k: "${values.}"}\n', /malformed placeholder/],
    ['apiVersion: v1\nkind: A\nmetadata: {name: a}\ndata: {k: *nothing}\n', /alias/i],
    ['# only a comment\n', /contain no object/],
  ];
  for (const [content, want] of cases) {
    const { causes } = parse(content);
    assert.ok(causes.length > 0, `refused: ${content}`);
    assert.match(causes.map((c) => c.message).join('\n'), want, content);
    assert.match(causes[0]!.field, /^spec\.manifests(\[0\]\.content)?$/);
  }
});

test('alias bombs are cut off', () => {
  let y = 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
  for (let i = 1; i < 8; i++) y += `a${i}: &a${i} [*a${i - 1}, *a${i - 1}, *a${i - 1}, *a${i - 1}, *a${i - 1}, *a${i - 1}, *a${i - 1}, *a${i - 1}, *a${i - 1}, *a${i - 1}]\n`;
  const { causes } = parse(`apiVersion: v1\nkind: A\nmetadata: {name: a}\ndata:\n${y.replace(/^/gm, '  ')}`);
  assert.match(causes[0]?.message ?? '', /more than .* nodes/);
});

test('placeholders must resolve: known cluster/addon fields, values declared in the schema, no objects inside text', () => {
  const { template } = parse(
    'apiVersion: v1\nkind: A\nmetadata: {name: "${cluster.nam}"}\ndata:\n  a: ${values.replicas}\n  b: "${values.nope}"\n  c: "x ${values.obj}"\n  d: ${values.free.anything}\n',
  );
  const schema = { type: 'object', properties: { replicas: { type: 'integer' }, obj: { type: 'object' }, free: { type: 'object' } } };
  const msgs = checkPlaceholders(template.placeholders, schema).map((c) => c.message);
  assert.equal(msgs.length, 3, msgs.join('\n'));
  assert.match(msgs[0]!, /unknown placeholder \$\{cluster\.nam\}; cluster has name, project, dnsIP/);
  assert.match(msgs[1]!, /\$\{values\.nope\} is not declared in spec\.valuesSchema/);
  assert.match(msgs[2]!, /\$\{values\.obj\} is an object; it can only stand alone/);
});
