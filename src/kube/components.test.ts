import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  etcdArgs,
  etcdClientURL,
  type EtcdConfig,
  etcdPeerURL,
  hostPort,
  kubeApiServerArgs,
  type KubeApiServerConfig,
  kubeApiServerURL,
  kubeControllerManagerArgs,
  kubeSchedulerArgs,
  kubeSchedulerConfiguration,
} from './components.js';
import { parse as parseYaml } from 'yaml';

/** --flag=value list → Map (asserting no flag appears twice). */
function flags(args: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const a of args) {
    const match = /^--([a-z0-9-]+|v)=(.*)$/.exec(a);
    assert.ok(match, `malformed arg ${a}`);
    assert.ok(!m.has(match[1]!), `duplicate flag ${match[1]}`);
    m.set(match[1]!, match[2]!);
  }
  return m;
}

const etcdTls = {
  certFile: '/p/etcd/server.crt',
  keyFile: '/p/etcd/server.key',
  trustedCaFile: '/p/etcd/ca.crt',
  peerCertFile: '/p/etcd/peer.crt',
  peerKeyFile: '/p/etcd/peer.key',
  peerTrustedCaFile: '/p/etcd/ca.crt',
};

describe('etcd args', () => {
  it('single member with TLS for clients and peers', () => {
    const cfg: EtcdConfig = { name: 'etcd-0', dataDir: '/d/etcd', listenAddress: '127.0.10.1', clientPort: 2379, peerPort: 2380, tls: etcdTls };
    const f = flags(etcdArgs(cfg));
    assert.equal(f.get('name'), 'etcd-0');
    assert.equal(f.get('data-dir'), '/d/etcd');
    assert.equal(f.get('listen-client-urls'), 'https://127.0.10.1:2379');
    assert.equal(f.get('advertise-client-urls'), 'https://127.0.10.1:2379');
    assert.equal(f.get('listen-peer-urls'), 'https://127.0.10.1:2380');
    assert.equal(f.get('initial-advertise-peer-urls'), 'https://127.0.10.1:2380');
    assert.equal(f.get('initial-cluster'), 'etcd-0=https://127.0.10.1:2380');
    assert.equal(f.get('initial-cluster-state'), 'new');
    assert.equal(f.get('client-cert-auth'), 'true');
    assert.equal(f.get('peer-client-cert-auth'), 'true');
    assert.equal(f.get('trusted-ca-file'), '/p/etcd/ca.crt');
    assert.equal(f.get('peer-cert-file'), '/p/etcd/peer.crt');
    assert.equal(f.has('unsafe-no-fsync'), false);
    assert.equal(f.has('listen-metrics-urls'), false);
    assert.equal(etcdClientURL(cfg), 'https://127.0.10.1:2379');
    assert.equal(etcdPeerURL(cfg), 'https://127.0.10.1:2380');
  });

  it('multi-member, joining, with options and extra args', () => {
    const members = [0, 1, 2].map((i) => ({ name: `m${i}`, peerURL: `https://127.0.10.${i + 1}:2380` }));
    const f = flags(
      etcdArgs({
        name: 'm1',
        dataDir: '/d/m1',
        listenAddress: '127.0.10.2',
        clientPort: 2379,
        peerPort: 2380,
        metricsPort: 2381,
        tls: { ...etcdTls, clientCertAuth: false },
        initialCluster: members,
        initialClusterState: 'existing',
        initialClusterToken: 'tok',
        unsafeNoFsync: true,
        quotaBackendBytes: 2 ** 31,
        autoCompaction: { mode: 'periodic', retention: '5m' },
        logLevel: 'warn',
        extraArgs: { 'snapshot-count': 5000, '--log-level': 'error', 'peer-client-cert-auth': null },
      }),
    );
    assert.equal(f.get('initial-cluster'), 'm0=https://127.0.10.1:2380,m1=https://127.0.10.2:2380,m2=https://127.0.10.3:2380');
    assert.equal(f.get('initial-cluster-state'), 'existing');
    assert.equal(f.get('initial-cluster-token'), 'tok');
    assert.equal(f.get('listen-metrics-urls'), 'http://127.0.10.2:2381');
    assert.equal(f.get('unsafe-no-fsync'), 'true');
    assert.equal(f.get('client-cert-auth'), 'false');
    assert.equal(f.get('quota-backend-bytes'), '2147483648');
    assert.equal(f.get('auto-compaction-retention'), '5m');
    assert.equal(f.get('snapshot-count'), '5000');
    assert.equal(f.get('log-level'), 'error', 'extra args override in place');
    assert.equal(f.has('peer-client-cert-auth'), false, 'null removes');
  });

  it('refuses a member missing from its own initial cluster', () => {
    assert.throws(
      () =>
        etcdArgs({
          name: 'x',
          dataDir: '/d',
          listenAddress: '127.0.0.1',
          clientPort: 1,
          peerPort: 2,
          tls: etcdTls,
          initialCluster: [{ name: 'y', peerURL: 'https://127.0.0.1:2' }],
        }),
      /not in its initial cluster/,
    );
  });

  it('brackets IPv6 hosts', () => {
    assert.equal(hostPort('::1', 2379), '[::1]:2379');
    assert.equal(hostPort('127.0.0.1', 2379), '127.0.0.1:2379');
  });
});

const apiCfg: KubeApiServerConfig = {
  bindAddress: '127.0.10.1',
  securePort: 6443,
  etcdServers: ['https://127.0.10.1:2379', 'https://127.0.10.2:2379'],
  etcdCaFile: '/p/etcd/ca.crt',
  etcdCertFile: '/p/apiserver-etcd-client.crt',
  etcdKeyFile: '/p/apiserver-etcd-client.key',
  tlsCertFile: '/p/apiserver.crt',
  tlsPrivateKeyFile: '/p/apiserver.key',
  clientCaFile: '/p/ca.crt',
  serviceAccountKeyFile: '/p/sa.pub',
  serviceAccountSigningKeyFile: '/p/sa.key',
  serviceAccountIssuer: 'https://kubernetes.default.svc.cluster.local',
  serviceClusterIpRange: '10.96.0.0/16',
};

describe('kube-apiserver args', () => {
  it('has the required flags with defaults', () => {
    const f = flags(kubeApiServerArgs(apiCfg));
    assert.equal(f.get('bind-address'), '127.0.10.1');
    assert.equal(f.get('advertise-address'), '127.0.10.1');
    assert.equal(f.get('secure-port'), '6443');
    assert.equal(f.get('etcd-servers'), 'https://127.0.10.1:2379,https://127.0.10.2:2379');
    assert.equal(f.get('etcd-cafile'), '/p/etcd/ca.crt');
    assert.equal(f.get('client-ca-file'), '/p/ca.crt');
    assert.equal(f.get('service-account-key-file'), '/p/sa.pub');
    assert.equal(f.get('service-account-signing-key-file'), '/p/sa.key');
    assert.equal(f.get('service-account-issuer'), 'https://kubernetes.default.svc.cluster.local');
    assert.equal(f.get('service-cluster-ip-range'), '10.96.0.0/16');
    assert.equal(f.get('authorization-mode'), 'Node,RBAC');
    assert.equal(f.get('allow-privileged'), 'true');
    assert.equal(f.get('profiling'), 'false');
    assert.equal(f.has('requestheader-client-ca-file'), false);
    assert.equal(f.has('endpoint-reconciler-type'), false);
    assert.equal(kubeApiServerURL(apiCfg), 'https://127.0.10.1:6443');
  });

  it('front proxy, reconciler, admission, feature gates, runtime config', () => {
    const f = flags(
      kubeApiServerArgs({
        ...apiCfg,
        advertiseAddress: '10.0.0.5',
        etcdPrefix: '/clusters/c1',
        frontProxy: { clientCertFile: '/p/fp.crt', clientKeyFile: '/p/fp.key', requestheaderClientCaFile: '/p/fp-ca.crt' },
        endpointReconcilerType: 'none',
        enableAdmissionPlugins: ['NodeRestriction'],
        featureGates: { ZFeature: false, AFeature: true },
        runtimeConfig: { 'api/all': true },
        verbosity: 2,
        extraArgs: { 'event-ttl': '30m', profiling: true },
      }),
    );
    assert.equal(f.get('advertise-address'), '10.0.0.5');
    assert.equal(f.get('etcd-prefix'), '/clusters/c1');
    assert.equal(f.get('proxy-client-cert-file'), '/p/fp.crt');
    assert.equal(f.get('requestheader-client-ca-file'), '/p/fp-ca.crt');
    assert.equal(f.get('requestheader-allowed-names'), 'front-proxy-client');
    assert.equal(f.get('requestheader-username-headers'), 'X-Remote-User');
    assert.equal(f.get('requestheader-group-headers'), 'X-Remote-Group');
    assert.equal(f.get('requestheader-extra-headers-prefix'), 'X-Remote-Extra-');
    assert.equal(f.get('endpoint-reconciler-type'), 'none');
    assert.equal(f.get('enable-admission-plugins'), 'NodeRestriction');
    assert.equal(f.get('feature-gates'), 'AFeature=true,ZFeature=false');
    assert.equal(f.get('runtime-config'), 'api/all=true');
    assert.equal(f.get('v'), '2');
    assert.equal(f.get('event-ttl'), '30m');
    assert.equal(f.get('profiling'), 'true');
    assert.equal(kubeApiServerURL({ bindAddress: '0.0.0.0', advertiseAddress: '10.0.0.5', securePort: 443 }), 'https://10.0.0.5:443');
  });

  it('needs etcd', () => {
    assert.throws(() => kubeApiServerArgs({ ...apiCfg, etcdServers: [] }), /etcd/);
  });
});

describe('kube-controller-manager args', () => {
  it('defaults: leader election, delegated auth via the kubeconfig, fast node monitoring', () => {
    const f = flags(
      kubeControllerManagerArgs({
        kubeconfig: '/p/kcm.kubeconfig',
        bindAddress: '127.0.10.1',
        securePort: 10257,
        rootCaFile: '/p/ca.crt',
        serviceAccountPrivateKeyFile: '/p/sa.key',
        clusterSigningCertFile: '/p/ca.crt',
        clusterSigningKeyFile: '/p/ca.key',
      }),
    );
    assert.equal(f.get('kubeconfig'), '/p/kcm.kubeconfig');
    assert.equal(f.get('authentication-kubeconfig'), '/p/kcm.kubeconfig');
    assert.equal(f.get('authorization-kubeconfig'), '/p/kcm.kubeconfig');
    assert.equal(f.get('authorization-always-allow-paths'), '/healthz,/readyz,/livez,/metrics');
    assert.equal(f.get('bind-address'), '127.0.10.1');
    assert.equal(f.get('secure-port'), '10257');
    assert.equal(f.get('root-ca-file'), '/p/ca.crt');
    assert.equal(f.get('service-account-private-key-file'), '/p/sa.key');
    assert.equal(f.get('cluster-signing-cert-file'), '/p/ca.crt');
    assert.equal(f.get('cluster-signing-key-file'), '/p/ca.key');
    assert.equal(f.get('leader-elect'), 'true');
    assert.equal(f.get('use-service-account-credentials'), 'true');
    assert.equal(f.get('controllers'), '*');
    assert.equal(f.get('node-monitor-period'), '5s');
    assert.equal(f.get('node-monitor-grace-period'), '40s');
  });

  it('configurable node monitoring, controllers and CIDRs', () => {
    const f = flags(
      kubeControllerManagerArgs({
        kubeconfig: '/k',
        bindAddress: '127.0.10.1',
        securePort: 1,
        rootCaFile: '/ca',
        serviceAccountPrivateKeyFile: '/sa',
        nodeMonitorPeriod: '2s',
        nodeMonitorGracePeriod: '20s',
        controllers: ['*', '-ttl'],
        clusterCidr: '10.244.0.0/16',
        allocateNodeCidrs: true,
        leaderElect: false,
      }),
    );
    assert.equal(f.get('node-monitor-period'), '2s');
    assert.equal(f.get('node-monitor-grace-period'), '20s');
    assert.equal(f.get('controllers'), '*,-ttl');
    assert.equal(f.get('cluster-cidr'), '10.244.0.0/16');
    assert.equal(f.get('allocate-node-cidrs'), 'true');
    assert.equal(f.get('leader-elect'), 'false');
    assert.equal(f.has('cluster-signing-cert-file'), false);
    assert.throws(
      () => kubeControllerManagerArgs({ kubeconfig: '/k', bindAddress: 'h', securePort: 1, rootCaFile: '/c', serviceAccountPrivateKeyFile: '/s', clusterSigningCertFile: '/x' }),
      /go together/,
    );
  });
});

describe('kube-scheduler args', () => {
  it('leader election and always-allow health paths', () => {
    const f = flags(kubeSchedulerArgs({ kubeconfig: '/p/s.kubeconfig', bindAddress: '127.0.10.1', securePort: 10259 }));
    assert.equal(f.get('kubeconfig'), '/p/s.kubeconfig');
    assert.equal(f.get('authentication-kubeconfig'), '/p/s.kubeconfig');
    assert.equal(f.get('leader-elect'), 'true');
    assert.equal(f.get('secure-port'), '10259');
    assert.equal(f.get('authorization-always-allow-paths'), '/healthz,/readyz,/livez,/metrics');
  });

  it('a config file replaces the deprecated --kubeconfig and the leader-elect flag', () => {
    const f = flags(kubeSchedulerArgs({ kubeconfig: '/k', bindAddress: 'h', securePort: 1, configFile: '/c.yaml' }));
    assert.equal(f.get('config'), '/c.yaml');
    assert.equal(f.has('leader-elect'), false);
    assert.equal(f.has('kubeconfig'), false);
    assert.equal(f.get('authentication-kubeconfig'), '/k');
    assert.equal(f.has('profiling'), false);
    const doc = parseYaml(kubeSchedulerConfiguration({ kubeconfig: '/k', qps: 50 })) as Record<string, unknown>;
    assert.deepEqual(doc, {
      apiVersion: 'kubescheduler.config.k8s.io/v1',
      kind: 'KubeSchedulerConfiguration',
      clientConnection: { kubeconfig: '/k', qps: 50 },
      leaderElection: { leaderElect: true },
    });
  });
});
