// The virtual kubelet against a small in-memory fake of the API endpoints it uses, to cover what
// the real-cluster test (test/agent/virtual-kubelet.test.ts) cannot show without the toolchain or
// with the default admission plugins: NodeRestriction label handling, the registration marker, the
// exact delete/patch requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { KubeClient, type KubeObject } from '../kube/client.js';
import type { Lease, Node, Pod } from '../kube/objects.js';
import { VirtualKubelet } from './virtual-kubelet.js';

type Obj = KubeObject & { metadata: NonNullable<KubeObject['metadata']>; [k: string]: unknown };

function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Strategic merge as far as the kubelet needs it: status.conditions merge by type. */
function strategicPatch(target: Obj, patch: { status?: { conditions?: { type: string }[] } }): Obj {
  const conds = [...(((target.status as { conditions?: { type: string }[] }) ?? {}).conditions ?? [])];
  for (const c of patch.status?.conditions ?? []) {
    const i = conds.findIndex((x) => x.type === c.type);
    if (i >= 0) conds[i] = { ...conds[i], ...c };
    else conds.push(c);
  }
  const merged = mergePatch(target, patch) as Obj;
  if (patch.status?.conditions) (merged.status as { conditions: unknown[] }).conditions = conds;
  return merged;
}

const RESTRICTED = /^node-role\.kubernetes\.io\//;

class FakeApi {
  rv = 1;
  readonly nodes = new Map<string, Obj>();
  readonly leases = new Map<string, Obj>();
  readonly pods = new Map<string, Obj>();
  readonly log: string[] = [];
  private readonly events: { kind: 'nodes' | 'pods'; type: string; obj: Obj; rv: number }[] = [];
  private readonly watchers = new Set<{ kind: string; match: (o: Obj) => boolean; res: http.ServerResponse }>();
  server!: http.Server;
  url = '';

  constructor(private readonly nodeRestriction: boolean) {}

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, res, Buffer.concat(chunks).toString('utf8')));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.res.end();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  private bump(kind: 'nodes' | 'pods' | 'leases', type: string, obj: Obj): Obj {
    obj.metadata.resourceVersion = String(++this.rv);
    if (kind === 'leases') return obj;
    this.events.push({ kind, type, obj: structuredClone(obj), rv: this.rv });
    for (const w of this.watchers) if (w.kind === kind && w.match(obj)) w.res.write(`${JSON.stringify({ type, object: obj })}\n`);
    return obj;
  }

  /** Test-side writes. */
  put(kind: 'nodes' | 'pods', obj: Obj, type = 'ADDED'): void {
    const key = kind === 'pods' ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name!;
    obj.metadata.uid ??= `uid-${key}-${this.rv}`;
    this[kind].set(key, obj);
    this.bump(kind, type, obj);
  }

  remove(kind: 'nodes' | 'pods', key: string): void {
    const o = this[kind].get(key);
    if (!o) return;
    this[kind].delete(key);
    this.bump(kind, 'DELETED', o);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
    const u = new URL(req.url!, 'http://x');
    const who = req.headers.authorization === 'Bearer admin' ? 'admin' : 'kubelet';
    this.log.push(`${who} ${req.method} ${u.pathname}${req.method === 'DELETE' ? ` ${body}` : ''}`);
    const send = (code: number, obj: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    const fail = (code: number, reason: string, message: string) => send(code, { kind: 'Status', code, reason, message });
    const parts = u.pathname.split('/').filter(Boolean);
    // /api/v1/nodes[/name[/status]] | /api/v1/pods | /api/v1/namespaces/ns/pods/name[/status] | /apis/coordination.k8s.io/v1/namespaces/ns/leases[/name]
    const fs = u.searchParams.get('fieldSelector') ?? '';
    const [fsKey, fsVal] = fs.split('=');
    const match = (o: Obj) => !fs || (fsKey === 'metadata.name' ? o.metadata.name === fsVal : (o.spec as { nodeName?: string })?.nodeName === fsVal);

    if (u.searchParams.get('watch') === '1') {
      const kind = parts.includes('nodes') ? 'nodes' : 'pods';
      res.writeHead(200, { 'content-type': 'application/json' });
      const from = Number(u.searchParams.get('resourceVersion') ?? 0);
      for (const e of this.events) if (e.kind === kind && e.rv > from && match(e.obj)) res.write(`${JSON.stringify({ type: e.type, object: e.obj })}\n`);
      const w = { kind, match, res };
      this.watchers.add(w);
      res.on('close', () => this.watchers.delete(w));
      return;
    }

    if (parts[2] === 'nodes') {
      const name = parts[3];
      if (!name && req.method === 'GET') return send(200, { metadata: { resourceVersion: String(this.rv) }, items: [...this.nodes.values()].filter(match) });
      if (!name && req.method === 'POST') {
        const n = JSON.parse(body) as Obj;
        const bad = Object.keys(n.metadata.labels ?? {}).filter((k) => RESTRICTED.test(k));
        if (this.nodeRestriction && who === 'kubelet' && bad.length) {
          return fail(403, 'Forbidden', `nodes "${n.metadata.name}" is forbidden: node "${n.metadata.name}" is not allowed to set the following labels: ${bad.join(', ')}`);
        }
        if (this.nodes.has(n.metadata.name!)) return fail(409, 'AlreadyExists', 'exists');
        n.metadata.uid = `node-uid-${this.rv}`;
        if (!n.spec || !(n.spec as { podCIDR?: string }).podCIDR) n.spec = { ...(n.spec ?? {}), podCIDR: '10.244.7.0/24' }; // "node IPAM"
        this.nodes.set(n.metadata.name!, n);
        return send(201, this.bump('nodes', 'ADDED', n));
      }
      const node = name ? this.nodes.get(name) : undefined;
      if (!node) return fail(404, 'NotFound', `nodes "${name}" not found`);
      if (req.method === 'GET') return send(200, node);
      if (req.method === 'PATCH') {
        const patch = JSON.parse(body) as { metadata?: { uid?: string; labels?: Record<string, string> } };
        if (patch.metadata?.uid && patch.metadata.uid !== node.metadata.uid) return fail(422, 'Invalid', 'uid is immutable');
        const bad = Object.keys(patch.metadata?.labels ?? {}).filter((k) => RESTRICTED.test(k));
        if (this.nodeRestriction && who === 'kubelet' && bad.length) return fail(403, 'Forbidden', `is not allowed to modify labels: ${bad.join(', ')}`);
        const next = mergePatch(node, patch) as Obj;
        this.nodes.set(name!, next);
        return send(200, this.bump('nodes', 'MODIFIED', next));
      }
    }
    if (parts.includes('leases')) {
      const name = parts[6];
      if (req.method === 'GET') return this.leases.has(name!) ? send(200, this.leases.get(name!)) : fail(404, 'NotFound', 'no lease');
      const l = JSON.parse(body) as Obj;
      if (req.method === 'POST' && this.leases.has(l.metadata.name!)) return fail(409, 'AlreadyExists', 'exists');
      if (req.method === 'PUT' && this.leases.get(name!)?.metadata.resourceVersion !== l.metadata.resourceVersion) return fail(409, 'Conflict', 'modified');
      this.leases.set(l.metadata.name!, l);
      return send(200, this.bump('leases', 'X', l));
    }
    if (parts.includes('pods')) {
      if (parts.length === 3) return send(200, { metadata: { resourceVersion: String(this.rv) }, items: [...this.pods.values()].filter(match) });
      const key = `${parts[3]}/${parts[5]}`;
      const pod = this.pods.get(key);
      if (!pod) return fail(404, 'NotFound', 'no pod');
      if (req.method === 'PATCH') {
        const patch = JSON.parse(body) as Obj;
        if (patch.metadata?.uid !== pod.metadata.uid) return fail(422, 'Invalid', 'uid');
        const next = strategicPatch(pod, patch as { status?: { conditions?: { type: string }[] } });
        this.pods.set(key, next);
        return send(200, this.bump('pods', 'MODIFIED', next));
      }
      if (req.method === 'DELETE') {
        const opts = JSON.parse(body) as { preconditions?: { uid?: string } };
        if (opts.preconditions?.uid && opts.preconditions.uid !== pod.metadata.uid) return fail(409, 'Conflict', 'precondition');
        this.remove('pods', key);
        return send(200, pod);
      }
    }
    fail(404, 'NotFound', `no route ${req.method} ${u.pathname}`);
  }
}

async function until<T>(what: string, fn: () => T | undefined | false, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const log = pino({ level: 'silent' });

async function setup(nodeRestriction: boolean) {
  const api = new FakeApi(nodeRestriction);
  await api.start();
  const dir = await mkdtemp(join(tmpdir(), 'vk-'));
  const clients: KubeClient[] = [];
  const kubelets: VirtualKubelet[] = [];
  const make = (opts: { labeler?: boolean; statusIntervalMs?: number } = {}) => {
    const client = new KubeClient({ server: api.url, token: 'kubelet' });
    const labeler = opts.labeler ? new KubeClient({ server: api.url, token: 'admin' }) : undefined;
    clients.push(client, ...(labeler ? [labeler] : []));
    const k = new VirtualKubelet({
      client,
      labeler,
      identity: {
        nodeName: 'n1',
        machine: 'm1',
        address: '127.0.10.9',
        roles: ['worker'],
        labels: { 'marina.dev/pool': 'p' },
        taints: [],
        capacity: { cpu: '2', memory: '2Gi', pods: '10' },
        kubeletVersion: 'v1.36.3',
        daemonPort: 7000,
      },
      stateDir: join(dir, 'kubelet'),
      log,
      renewIntervalMs: 100,
      statusIntervalMs: opts.statusIntervalMs ?? 200,
      resyncIntervalMs: 200,
    });
    kubelets.push(k);
    k.start();
    return k;
  };
  const teardown = async () => {
    for (const k of kubelets) await k.stop();
    for (const c of clients) c.close();
    await api.stop();
    await rm(dir, { recursive: true, force: true });
  };
  return { api, make, teardown, dir };
}

test('NodeRestriction: registers with the labels a kubelet may set, the labeler adds node-role labels', async () => {
  const { api, make, teardown } = await setup(true);
  try {
    const k = make({ labeler: true });
    const node = await until('role label', () => {
      const n = api.nodes.get('n1') as Node | undefined;
      return n?.metadata.labels?.['node-role.kubernetes.io/worker'] === '' ? n : undefined;
    });
    assert.equal(node.metadata.labels?.['kubernetes.io/hostname'], 'n1');
    assert.equal(node.metadata.labels?.['marina.dev/pool'], 'p');
    assert.ok(api.log.includes('kubelet POST /api/v1/nodes'));
    assert.ok(api.log.includes('admin PATCH /api/v1/nodes/n1'));
    await until('heartbeating', () => k.heartbeating());
    const lease = api.leases.get('n1') as Lease;
    assert.match(lease.spec!.renewTime!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.equal(lease.metadata.ownerReferences?.[0]?.uid, node.metadata.uid);
    await until('Ready', () => (api.nodes.get('n1') as Node).status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True');
    assert.deepEqual(k.state().pendingLabels, undefined);
    // The lease keeps being renewed with optimistic concurrency (PUT with resourceVersion).
    const rv = lease.metadata.resourceVersion;
    await until('renewal', () => api.leases.get('n1')?.metadata.resourceVersion !== rv);
  } finally {
    await teardown();
  }
});

test('NodeRestriction without labeler credentials: node registers, the role label is reported pending', async () => {
  const { api, make, teardown } = await setup(true);
  try {
    const k = make();
    await until('registered', () => k.state().phase === 'running');
    await until('heartbeating', () => k.heartbeating());
    assert.deepEqual(k.state().pendingLabels, ['node-role.kubernetes.io/worker']);
    assert.equal(api.nodes.get('n1')?.metadata.labels?.['node-role.kubernetes.io/worker'], undefined);
    // Marina's controllers apply it with admin credentials: no longer pending.
    const n = structuredClone(api.nodes.get('n1')!);
    n.metadata.labels = { ...n.metadata.labels, 'node-role.kubernetes.io/worker': '' };
    api.put('nodes', n, 'MODIFIED');
    await until('not pending', () => k.state().pendingLabels === undefined);
  } finally {
    await teardown();
  }
});

test('pods bound to the node run with IPs from its podCIDR; terminating pods are deleted with grace 0 and a uid precondition', async () => {
  const { api, make, teardown } = await setup(false);
  try {
    const k = make();
    await until('running', () => k.state().phase === 'running');
    const pod = (name: string): Obj => ({
      metadata: { name, namespace: 'default' },
      spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'nginx' }] },
      status: { phase: 'Pending' },
    });
    api.put('pods', pod('a'));
    api.put('pods', pod('b'));
    api.put('pods', { ...pod('other'), spec: { nodeName: 'n2', containers: [] } });
    const [a, b] = await until('both running', () => {
      const ps = ['default/a', 'default/b'].map((k2) => api.pods.get(k2) as Pod);
      return ps.every((p) => p.status?.phase === 'Running') ? ps : undefined;
    });
    assert.equal(a!.status?.podIP, '10.244.7.2');
    assert.equal(b!.status?.podIP, '10.244.7.3');
    assert.equal(a!.status?.hostIP, '127.0.10.9');
    assert.equal((api.pods.get('default/other') as Pod).status?.phase, 'Pending', 'pods of other nodes untouched');
    await until('pod count', () => k.state().pods === 2);

    // Graceful deletion requested by someone: the kubelet finishes it.
    const terminating = structuredClone(api.pods.get('default/a')!);
    terminating.metadata.deletionTimestamp = '2026-01-01T00:00:00Z';
    api.put('pods', terminating, 'MODIFIED');
    await until('deleted', () => !api.pods.has('default/a'));
    const del = api.log.find((l) => l.startsWith('kubelet DELETE /api/v1/namespaces/default/pods/a'))!;
    assert.deepEqual(JSON.parse(del.slice(del.indexOf('{'))), {
      apiVersion: 'v1',
      kind: 'DeleteOptions',
      gracePeriodSeconds: 0,
      preconditions: { uid: terminating.metadata.uid },
    });

    // Its IP is free again for the next pod.
    api.put('pods', pod('c'));
    const c = await until('c running', () => ((api.pods.get('default/c') as Pod).status?.phase === 'Running' ? (api.pods.get('default/c') as Pod) : undefined));
    assert.equal(c.status?.podIP, '10.244.7.2');

    // No status re-posts for pods already up to date (resync runs every 200 ms here).
    const patches = api.log.filter((l) => l.includes('PATCH /api/v1/namespaces/default/pods')).length;
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(api.log.filter((l) => l.includes('PATCH /api/v1/namespaces/default/pods')).length, patches);
  } finally {
    await teardown();
  }
});

test('a Node deleted or replaced while the kubelet runs, or gone while the agent was down, is registered again', async () => {
  const { api, make, teardown, dir } = await setup(false);
  const marker = () => readFile(join(dir, 'kubelet', 'node-uid'), 'utf8');
  const node = () => api.nodes.get('n1') as Node | undefined;
  const ready = (n: Node | undefined) => n?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  try {
    const k1 = make();
    await until('running', () => k1.state().phase === 'running');
    const uid1 = k1.state().nodeUID!;
    assert.equal(k1.state().reregistrations, 0);

    // Deleted (the garbage collector takes its Lease along): a new Node, a new Lease owned by it.
    api.remove('nodes', 'n1');
    api.leases.delete('n1');
    const uid2 = await until('registered again', () => (k1.state().reregistrations === 1 && k1.state().phase === 'running' ? k1.state().nodeUID : undefined));
    assert.notEqual(uid2, uid1);
    assert.equal(node()?.metadata.uid, uid2);
    assert.equal(node()?.metadata.labels?.['marina.dev/pool'], 'p', 'labels as at registration');
    // Seen as the watch's DELETED event, or by its first list when the deletion came before it.
    assert.match(k1.state().lastReregistration!.reason, /was deleted|no longer exists/);
    assert.equal(await marker(), `n1 ${uid2}\n`);
    await until('Ready again', () => ready(node()));
    await until('lease owned by the new Node', () => (api.leases.get('n1') as Lease | undefined)?.metadata.ownerReferences?.[0]?.uid === uid2);
    await until('heartbeating', () => k1.heartbeating());

    // Replaced by a Node of the same name with another uid: adopted.
    const other = structuredClone(node()!) as Obj;
    other.metadata.uid = 'someone-elses';
    api.put('nodes', other, 'MODIFIED');
    await until('adopted', () => k1.state().nodeUID === 'someone-elses' && k1.state().phase === 'running');
    assert.equal(k1.state().reregistrations, 2);
    assert.match(k1.state().lastReregistration!.reason, /replaced/);
    assert.equal(await marker(), 'n1 someone-elses\n');
    await until('lease owned by the adopted Node', () => (api.leases.get('n1') as Lease | undefined)?.metadata.ownerReferences?.[0]?.uid === 'someone-elses');
    await k1.stop();
    assert.equal(k1.state().phase, 'stopped');

    // Gone while the agent was down: the restarted agent (same state dir) registers it again.
    api.remove('nodes', 'n1');
    const k2 = make();
    await until('registered at start', () => k2.state().phase === 'running' && k2.state().reregistrations === 1);
    assert.match(k2.state().lastReregistration!.reason, /gone at start/);
    assert.equal(node()?.metadata.uid, k2.state().nodeUID);
    assert.notEqual(k2.state().nodeUID, 'someone-elses');
    await until('Ready at start', () => ready(node()));
  } finally {
    await teardown();
  }
});

test('the node status is re-posted at once when the node controller marks it Unknown', async () => {
  const { api, make, teardown } = await setup(false);
  try {
    const k = make({ statusIntervalMs: 60_000 });
    await until('Ready', () => (api.nodes.get('n1') as Node | undefined)?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True');
    const n = structuredClone(api.nodes.get('n1')!) as Node;
    n.status!.conditions = n.status!.conditions!.map((c) => (c.type === 'Ready' ? { ...c, status: 'Unknown' as const, reason: 'NodeStatusUnknown' } : c));
    api.put('nodes', n as Obj, 'MODIFIED');
    await until('Ready again', () => (api.nodes.get('n1') as Node).status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True', 2500);
    assert.equal(k.state().phase, 'running');
  } finally {
    await teardown();
  }
});
