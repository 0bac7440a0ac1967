import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  buildLease,
  buildNode,
  buildNodeStatus,
  buildPodStatus,
  fakeContainerID,
  fakeImageID,
  fallbackPodCidr,
  metaTime,
  microTime,
  type NodeIdentity,
  nodeLabels,
  nodeNeedsReadyStatus,
  podAction,
  PodIPAllocator,
  podStatusUpToDate,
  roleLabels,
  splitLabels,
} from './kube-objects.js';
import { kubeletMaySetLabel } from '../kube/node-labels.js';
import type { Pod } from '../kube/objects.js';

const MICROTIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

test('microTime has exactly 6 fractional digits (metav1.MicroTime) and keeps sub-millisecond precision', () => {
  assert.match(microTime(), MICROTIME);
  assert.equal(microTime(Date.UTC(2026, 0, 2, 3, 4, 5, 123) + 0.456), '2026-01-02T03:04:05.123456Z');
  assert.equal(microTime(Date.UTC(2026, 0, 2, 3, 4, 5, 7)), '2026-01-02T03:04:05.007000Z');
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 4102444800000 }), fc.integer({ min: 0, max: 999 }), (ms, us) => {
      const s = microTime(ms + us / 1000);
      return MICROTIME.test(s) && Date.parse(s) === ms;
    }),
  );
  assert.equal(metaTime(Date.UTC(2026, 0, 2, 3, 4, 5, 999)), '2026-01-02T03:04:05Z');
});

const identity = (over: Partial<NodeIdentity> = {}): NodeIdentity => ({
  nodeName: 'c1-w-0',
  machine: 'c1-w-0',
  address: '127.0.10.3',
  roles: ['worker', 'controlplane'],
  labels: { 'marina.dev/pool': 'workers' },
  taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }],
  capacity: { cpu: '4', memory: '8Gi', pods: '110' },
  kubeletVersion: 'v1.36.3',
  daemonPort: 7070,
  bootID: 'boot-1',
  ...over,
});

test('node labels: hostname, os/arch, role labels (controlplane → control-plane), configured ones win', () => {
  const l = nodeLabels(identity({ labels: { 'kubernetes.io/os': 'other', x: 'y' } }));
  assert.equal(l['kubernetes.io/hostname'], 'c1-w-0');
  assert.equal(l['kubernetes.io/os'], 'other');
  assert.equal(l['node-role.kubernetes.io/worker'], '');
  assert.equal(l['node-role.kubernetes.io/control-plane'], '');
  assert.equal(l['marina.dev/machine'], 'c1-w-0');
  assert.equal(l.x, 'y');
  assert.deepEqual(roleLabels(['etcd']), { 'node-role.kubernetes.io/etcd': '' });
});

test('NodeRestriction label rules match the admission plugin', () => {
  for (const k of ['kubernetes.io/hostname', 'node.kubernetes.io/instance-type', 'topology.kubernetes.io/zone', 'kubelet.kubernetes.io/x', 'foo.node.kubernetes.io/y', 'marina.dev/pool', 'app']) {
    assert.ok(kubeletMaySetLabel(k), k);
  }
  for (const k of ['node-role.kubernetes.io/worker', 'kubernetes.io/role', 'example.k8s.io/x', 'node-restriction.kubernetes.io/x', 'a.node-restriction.kubernetes.io/y']) {
    assert.ok(!kubeletMaySetLabel(k), k);
  }
  const { own, restricted } = splitLabels(nodeLabels(identity()));
  assert.deepEqual(Object.keys(restricted).sort(), ['node-role.kubernetes.io/control-plane', 'node-role.kubernetes.io/worker']);
  assert.equal(own['kubernetes.io/hostname'], 'c1-w-0');
});

test('buildNode carries taints and podCIDR; status is Ready with pressure conditions False', () => {
  const n = buildNode(identity({ podCIDR: '10.244.3.0/24' }), { a: 'b' });
  assert.deepEqual(n.spec?.taints, [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }]);
  assert.deepEqual(n.spec?.podCIDRs, ['10.244.3.0/24']);
  assert.deepEqual(n.metadata.labels, { a: 'b' });

  const s = buildNodeStatus(identity(), undefined, '2026-01-01T00:00:00Z');
  const byType = Object.fromEntries(s.conditions!.map((c) => [c.type, c]));
  assert.equal(byType.Ready?.status, 'True');
  assert.equal(byType.Ready?.reason, 'KubeletReady');
  for (const t of ['MemoryPressure', 'DiskPressure', 'PIDPressure', 'NetworkUnavailable']) assert.equal(byType[t]?.status, 'False', t);
  assert.deepEqual(s.addresses, [
    { type: 'InternalIP', address: '127.0.10.3' },
    { type: 'Hostname', address: 'c1-w-0' },
  ]);
  assert.deepEqual(s.allocatable, s.capacity);
  assert.equal(s.nodeInfo?.kubeletVersion, 'v1.36.3');
  assert.equal(s.nodeInfo?.bootID, 'boot-1');
  assert.equal(s.daemonEndpoints?.kubeletEndpoint.Port, 7070);

  // A later update keeps lastTransitionTime of unchanged conditions, refreshes heartbeats,
  // and moves Ready's transition time when it flips from Unknown back to True.
  const prev = { conditions: s.conditions!.map((c) => (c.type === 'Ready' ? { ...c, status: 'Unknown' as const } : c)) };
  const s2 = buildNodeStatus(identity(), prev, '2026-01-01T00:05:00Z');
  const by2 = Object.fromEntries(s2.conditions!.map((c) => [c.type, c]));
  assert.equal(by2.MemoryPressure?.lastTransitionTime, '2026-01-01T00:00:00Z');
  assert.equal(by2.MemoryPressure?.lastHeartbeatTime, '2026-01-01T00:05:00Z');
  assert.equal(by2.Ready?.lastTransitionTime, '2026-01-01T00:05:00Z');
  assert.ok(nodeNeedsReadyStatus({ metadata: { name: 'n' }, status: prev }));
  assert.ok(!nodeNeedsReadyStatus({ metadata: { name: 'n' }, status: s2 }));
});

test('buildLease: MicroTime renewTime, holder, duration, ownerReference to the Node; keeps resourceVersion', () => {
  const l = buildLease('n1', 'uid-1', 40, '2026-01-01T00:00:00.000001Z');
  assert.equal(l.metadata.namespace, 'kube-node-lease');
  assert.deepEqual(l.spec, { holderIdentity: 'n1', leaseDurationSeconds: 40, renewTime: '2026-01-01T00:00:00.000001Z' });
  assert.deepEqual(l.metadata.ownerReferences, [{ apiVersion: 'v1', kind: 'Node', name: 'n1', uid: 'uid-1' }]);
  const renewed = buildLease('n1', 'uid-2', 40, '2026-01-01T00:00:10.000000Z', { ...l, metadata: { ...l.metadata, resourceVersion: '9' } });
  assert.equal(renewed.metadata.resourceVersion, '9');
  assert.deepEqual(renewed.metadata.ownerReferences, [{ apiVersion: 'v1', kind: 'Node', name: 'n1', uid: 'uid-2' }], 'owner fixed for a new Node uid');
});

const pod = (over: Partial<Pod> = {}): Pod => ({
  metadata: { name: 'web-1', namespace: 'default', uid: 'pod-uid-1', generation: 1 },
  spec: { nodeName: 'c1-w-0', containers: [{ name: 'nginx', image: 'nginx' }, { name: 'side', image: 'ghcr.io/x/y:1.2' }] },
  status: { phase: 'Pending', qosClass: 'BestEffort', conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: '2025-12-31T00:00:00Z' }] },
  ...over,
});

test('buildPodStatus: Running, all conditions True, running container statuses with well-formed ids', () => {
  const s = buildPodStatus(pod(), { hostIP: '127.0.10.3', podIP: '10.244.3.2', now: '2026-01-01T00:00:00Z' });
  assert.equal(s.phase, 'Running');
  assert.equal(s.podIP, '10.244.3.2');
  assert.deepEqual(s.podIPs, [{ ip: '10.244.3.2' }]);
  assert.deepEqual(s.hostIPs, [{ ip: '127.0.10.3' }]);
  assert.equal(s.startTime, '2026-01-01T00:00:00Z');
  assert.equal(s.observedGeneration, 1);
  const byType = Object.fromEntries(s.conditions!.map((c) => [c.type, c]));
  for (const t of ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled']) assert.equal(byType[t]?.status, 'True', t);
  assert.equal(byType.PodScheduled?.lastTransitionTime, '2025-12-31T00:00:00Z', 'scheduler transition time kept');
  assert.equal(s.containerStatuses?.length, 2);
  const [c0, c1] = s.containerStatuses!;
  assert.equal(c0!.image, 'docker.io/library/nginx:latest');
  assert.match(c0!.imageID, /^docker\.io\/library\/nginx@sha256:[0-9a-f]{64}$/);
  assert.match(c0!.containerID!, /^containerd:\/\/[0-9a-f]{64}$/);
  assert.equal(c0!.containerID, fakeContainerID('pod-uid-1', 'nginx'));
  assert.deepEqual(c0!.state, { running: { startedAt: '2026-01-01T00:00:00Z' } });
  assert.ok(c0!.ready && c0!.started && c0!.restartCount === 0);
  assert.equal(c1!.image, 'ghcr.io/x/y:1.2');
  assert.match(fakeImageID('ghcr.io/x/y:1.2'), /^ghcr\.io\/x\/y@sha256:/);
  assert.equal(s.initContainerStatuses, undefined);
});

test('buildPodStatus: init containers complete, sidecars run, readiness gates hold Ready, hostNetwork uses hostIP', () => {
  const p = pod({
    spec: {
      containers: [{ name: 'app', image: 'app:1' }],
      initContainers: [
        { name: 'init', image: 'busybox' },
        { name: 'proxy', image: 'envoy', restartPolicy: 'Always' },
      ],
      readinessGates: [{ conditionType: 'example.com/lb' }],
      hostNetwork: true,
    },
  });
  const s = buildPodStatus(p, { hostIP: '127.0.10.3', podIP: '10.0.0.9', now: '2026-01-01T00:00:00Z' });
  assert.equal(s.podIP, '127.0.10.3');
  assert.deepEqual(Object.keys(s.initContainerStatuses![0]!.state), ['terminated']);
  assert.equal((s.initContainerStatuses![0]!.state.terminated as { reason: string }).reason, 'Completed');
  assert.deepEqual(Object.keys(s.initContainerStatuses![1]!.state), ['running']);
  const ready = s.conditions!.find((c) => c.type === 'Ready')!;
  assert.equal(ready.status, 'False');
  assert.equal(ready.reason, 'ReadinessGatesNotReady');
  // Once the gate's condition is True (set by its controller), Ready follows.
  p.status!.conditions!.push({ type: 'example.com/lb', status: 'True' });
  assert.equal(buildPodStatus(p, { hostIP: 'h', podIP: 'x', now: 'n' }).conditions!.find((c) => c.type === 'Ready')!.status, 'True');
});

test('podStatusUpToDate: true after applying the status, false when anything relevant differs', () => {
  const p = pod();
  const ctx = { hostIP: '127.0.10.3', podIP: '10.244.3.2', now: '2026-01-01T00:00:00Z' };
  const desired = buildPodStatus(p, ctx);
  assert.ok(!podStatusUpToDate(p, desired));
  const applied: Pod = { ...p, status: { ...p.status, ...desired } };
  assert.ok(podStatusUpToDate(applied, buildPodStatus(applied, { ...ctx, now: '2026-01-01T01:00:00Z' })), 'later time alone is no change');
  const restarted: Pod = { ...applied, status: { ...applied.status, containerStatuses: applied.status!.containerStatuses!.slice(0, 1) } };
  assert.ok(!podStatusUpToDate(restarted, desired));
});

test('podAction: delete when terminating, ignore finished pods, else run', () => {
  assert.equal(podAction(pod({ metadata: { name: 'a', namespace: 'default', deletionTimestamp: '2026-01-01T00:00:00Z' } })), 'delete');
  assert.equal(podAction(pod({ status: { phase: 'Succeeded' } })), 'ignore');
  assert.equal(podAction(pod({ status: { phase: 'Failed' } })), 'ignore');
  assert.equal(podAction(pod()), 'run');
});

test('PodIPAllocator: lowest free host address, adoption, release, exhaustion', () => {
  const a = new PodIPAllocator('10.244.3.0/29'); // .0 network, .1 gateway, .7 broadcast → .2-.6
  assert.equal(a.allocate('p1'), '10.244.3.2');
  assert.equal(a.allocate('p1'), '10.244.3.2', 'idempotent per uid');
  assert.ok(a.adopt('p2', '10.244.3.4'));
  assert.ok(!a.adopt('p3', '10.244.3.4'), 'taken');
  assert.ok(!a.adopt('p3', '10.9.9.9'), 'outside the range');
  assert.equal(a.allocate('p3'), '10.244.3.3');
  assert.equal(a.allocate('p4'), '10.244.3.5');
  assert.equal(a.allocate('p5'), '10.244.3.6');
  assert.throws(() => a.allocate('p6'), /exhausted/);
  a.release('p3');
  assert.equal(a.allocate('p6'), '10.244.3.3');
  assert.equal(a.inUse, 5);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 200 }), (ops) => {
      const al = new PodIPAllocator('10.0.0.0/26');
      const held = new Map<string, string>();
      for (const op of ops) {
        const uid = `u${op % 20}`;
        if (op >= 20) {
          al.release(uid);
          held.delete(uid);
        } else held.set(uid, al.allocate(uid));
      }
      return new Set(held.values()).size === held.size && al.inUse === held.size;
    }),
  );
});

test('fallbackPodCidr is a stable /24 in 100.64.0.0/10', () => {
  const c = fallbackPodCidr('c1-w-0');
  assert.equal(c, fallbackPodCidr('c1-w-0'));
  assert.match(c, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d+\.0\/24$/);
  assert.notEqual(c, fallbackPodCidr('c1-w-1'));
  new PodIPAllocator(c); // parses
});
