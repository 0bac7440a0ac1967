import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  bucketsDelta,
  extractAgent,
  extractApiServer,
  extractEtcd,
  histogramBuckets,
  parsePrometheusText,
  parseValue,
  quantileFromBuckets,
  type Bucket,
  type MetricFamily,
  type MetricType,
} from './prom.js';

// ---- fixtures ------------------------------------------------------------------------------------

const FSYNC_BOUNDS = ['0.001', '0.002', '0.004', '0.008', '0.016', '0.032', '0.064', '0.128', '0.256', '0.512', '1.024', '2.048', '4.096', '8.192', '+Inf'];

/** An etcd 3.6 /metrics excerpt; `fsync` are the cumulative WAL fsync bucket counts. */
function etcdText(fsync: number[], opts: { leader?: boolean; changes?: number } = {}): string {
  const buckets = FSYNC_BOUNDS.map((le, i) => `etcd_disk_wal_fsync_duration_seconds_bucket{le="${le}"} ${fsync[i]}`).join('\n');
  return `# HELP etcd_debugging_mvcc_keys_total Total number of keys.
# TYPE etcd_debugging_mvcc_keys_total gauge
etcd_debugging_mvcc_keys_total 1482
# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync called by WAL.
# TYPE etcd_disk_wal_fsync_duration_seconds histogram
${buckets}
etcd_disk_wal_fsync_duration_seconds_sum 3.4417052150000016
etcd_disk_wal_fsync_duration_seconds_count ${fsync[fsync.length - 1]}
# HELP etcd_mvcc_db_total_size_in_bytes Total size of the underlying database physically allocated in bytes.
# TYPE etcd_mvcc_db_total_size_in_bytes gauge
etcd_mvcc_db_total_size_in_bytes 2.0897792e+07
# HELP etcd_server_has_leader Whether or not a leader exists. 1 is existence, 0 is not.
# TYPE etcd_server_has_leader gauge
etcd_server_has_leader 1
# HELP etcd_server_is_leader Whether or not this member is a leader. 1 if is, 0 otherwise.
# TYPE etcd_server_is_leader gauge
etcd_server_is_leader ${opts.leader ? 1 : 0}
# HELP etcd_server_leader_changes_seen_total The number of leader changes seen.
# TYPE etcd_server_leader_changes_seen_total counter
etcd_server_leader_changes_seen_total ${opts.changes ?? 1}
# HELP etcd_server_version Which version is running. 1 for 'server_version' label with current version.
# TYPE etcd_server_version gauge
etcd_server_version{server_version="3.6.5"} 1
# HELP go_gc_duration_seconds A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.8334e-05
go_gc_duration_seconds{quantile="0.5"} 6.1e-05
go_gc_duration_seconds{quantile="1"} 0.000590875
go_gc_duration_seconds_sum 0.010417999
go_gc_duration_seconds_count 113
`;
}

const APISERVER_BOUNDS = ['0.005', '0.025', '0.05', '0.1', '0.2', '0.4', '0.6', '0.8', '1', '1.25', '1.5', '2', '3', '4', '5', '6', '8', '10', '15', '20', '30', '45', '60', '+Inf'];

/** One apiserver_request_duration_seconds series; `per` maps a bound to observations in that bucket. */
function requestSeries(verb: string, resource: string, per: Record<string, number>): string {
  const labels = `component="apiserver",dry_run="",group="",resource="${resource}",scope="resource",subresource="",verb="${verb}",version="v1"`;
  let cum = 0;
  let sum = 0;
  const lines = APISERVER_BOUNDS.map((le) => {
    cum += per[le] ?? 0;
    sum += (per[le] ?? 0) * (le === '+Inf' ? 60 : Number(le));
    return `apiserver_request_duration_seconds_bucket{${labels},le="${le}"} ${cum}`;
  });
  lines.push(`apiserver_request_duration_seconds_sum{${labels}} ${sum}`, `apiserver_request_duration_seconds_count{${labels}} ${cum}`);
  return lines.join('\n');
}

/** A kube-apiserver 1.36 /metrics excerpt. */
function apiserverText(series: string[], inflight = true): string {
  return `# HELP aggregator_discovery_aggregation_count_total [ALPHA] Counter of number of times discovery was aggregated
# TYPE aggregator_discovery_aggregation_count_total counter
aggregator_discovery_aggregation_count_total 14
# HELP apiserver_admission_webhook_rejection_count [ALPHA] Admission webhook rejection count, identified by name and broken out for each admission type (validating or admit) and operation. Additional labels specify an error type (calling_webhook_error or apiserver_internal_error if an error occurred; no_error otherwise) and optionally a non-zero rejection code if the webhook rejects the request with an HTTP status code (honored by the apiserver when the code is greater or equal to 400). Codes greater than 600 are truncated to 600, to keep the metrics cardinality bounded.
# TYPE apiserver_admission_webhook_rejection_count counter
apiserver_admission_webhook_rejection_count{error_type="no_error",name="deny \\"privileged\\" pods, v2",operation="CREATE",rejection_code="403",type="validating"} 2
${
  inflight
    ? `# HELP apiserver_current_inflight_requests [STABLE] Maximal number of currently used inflight request limit of this apiserver per request kind in last second.
# TYPE apiserver_current_inflight_requests gauge
apiserver_current_inflight_requests{request_kind="mutating"} 3
apiserver_current_inflight_requests{request_kind="readOnly"} 7
`
    : ''
}# HELP apiserver_flowcontrol_current_executing_requests [BETA] Number of requests in initial (for a WATCH) or any (for a non-WATCH) execution stage in the API Priority and Fairness subsystem
# TYPE apiserver_flowcontrol_current_executing_requests gauge
apiserver_flowcontrol_current_executing_requests{flow_schema="exempt",priority_level="exempt"} 1
apiserver_flowcontrol_current_executing_requests{flow_schema="service-accounts",priority_level="workload-low"} 4
# HELP apiserver_request_duration_seconds [STABLE] Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.
# TYPE apiserver_request_duration_seconds histogram
${series.join('\n')}
# HELP kubernetes_build_info [ALPHA] A metric with a constant '1' value labeled by major, minor, git version, git commit, git tree state, build date, Go version, and compiler from which Kubernetes was built, and platform on which it is running.
# TYPE kubernetes_build_info gauge
kubernetes_build_info{build_date="2026-04-22T17:04:11Z",compiler="gc",git_commit="3c4b1fd2",git_tree_state="clean",git_version="v1.36.0",go_version="go1.25.8",major="1",minor="36",platform="linux/amd64"} 1
`;
}

function agentText(cpu: { agent: number; etcd: number }, rss = { agent: 61_440_000, etcd: 120_000_000 }): string {
  return `# HELP marina_agent_process_rss_bytes Resident set size of the agent and each process it runs.
# TYPE marina_agent_process_rss_bytes gauge
marina_agent_process_rss_bytes{process="agent"} ${rss.agent}
marina_agent_process_rss_bytes{process="etcd"} ${rss.etcd}

# HELP marina_agent_process_cpu_seconds_total User plus system CPU time of the agent and each process it runs (current incarnation).
# TYPE marina_agent_process_cpu_seconds_total counter
marina_agent_process_cpu_seconds_total{process="agent"} ${cpu.agent}
marina_agent_process_cpu_seconds_total{process="etcd"} ${cpu.etcd}

# HELP marina_agent_process_restarts_total Times the agent restarted a process after it exited.
# TYPE marina_agent_process_restarts_total counter
marina_agent_process_restarts_total{process="etcd"} 0

# HELP marina_agent_disk_used_bytes Disk space used under the machine data directory.
# TYPE marina_agent_disk_used_bytes gauge
marina_agent_disk_used_bytes 734003200
`;
}

// ---- parser --------------------------------------------------------------------------------------

test('parses etcd exposition into typed families, suffixed samples under their histogram or summary', () => {
  const fams = parsePrometheusText(etcdText([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 10, 10, 10]));
  const fsync = fams.get('etcd_disk_wal_fsync_duration_seconds')!;
  assert.equal(fsync.type, 'histogram');
  assert.equal(fsync.help, 'The latency distributions of fsync called by WAL.');
  assert.equal(fsync.samples.length, 17);
  assert.deepEqual(fsync.samples[14], { name: 'etcd_disk_wal_fsync_duration_seconds_bucket', labels: { le: '+Inf' }, value: 10 });
  assert.deepEqual(fsync.samples[16], { name: 'etcd_disk_wal_fsync_duration_seconds_count', labels: {}, value: 10 });
  assert.ok(!fams.has('etcd_disk_wal_fsync_duration_seconds_bucket'));

  const gc = fams.get('go_gc_duration_seconds')!;
  assert.equal(gc.type, 'summary');
  assert.deepEqual(
    gc.samples.map((s) => [s.name, s.labels.quantile, s.value]),
    [
      ['go_gc_duration_seconds', '0', 2.8334e-5],
      ['go_gc_duration_seconds', '0.5', 6.1e-5],
      ['go_gc_duration_seconds', '1', 0.000590875],
      ['go_gc_duration_seconds_sum', undefined, 0.010417999],
      ['go_gc_duration_seconds_count', undefined, 113],
    ],
  );
  assert.equal(fams.get('etcd_mvcc_db_total_size_in_bytes')!.samples[0]!.value, 20_897_792);
  assert.equal(fams.get('etcd_server_leader_changes_seen_total')!.type, 'counter');
  assert.deepEqual(fams.get('etcd_server_version')!.samples[0]!.labels, { server_version: '3.6.5' });
});

test('reads escapes, quoted commas and braces, trailing commas, timestamps, special values and CRLF', () => {
  const text = [
    '# HELP weird_total A help with a backslash \\\\ and a\\nnewline; \\t stays.',
    '# TYPE weird_total counter',
    'weird_total{path="C:\\\\dir\\\\",msg="say \\"hi\\"\\nbye",list="a,b,c",brace="}{",} 1.5e+06 1712345678901',
    'weird_total{ a = "1" , b="2" } 2',
    'weird_total{} +Inf',
    'weird_total{k="neg"} -Inf',
    'weird_total{k="nan"} NaN -5',
    'weird_total{k="keep",odd="\\t"}\t 3e-3 \t',
    '',
    '   ',
    '# a plain comment, then an empty one',
    '#',
    '# TYPE',
    'untyped_thing 42',
  ].join('\r\n');
  const fams = parsePrometheusText(text);
  const w = fams.get('weird_total')!;
  assert.equal(w.type, 'counter');
  assert.equal(w.help, 'A help with a backslash \\ and a\nnewline; \\t stays.');
  assert.deepEqual(w.samples[0], {
    name: 'weird_total',
    labels: { path: 'C:\\dir\\', msg: 'say "hi"\nbye', list: 'a,b,c', brace: '}{' },
    value: 1_500_000,
  });
  assert.deepEqual(w.samples[1]!.labels, { a: '1', b: '2' });
  assert.equal(w.samples[2]!.value, Infinity);
  assert.equal(w.samples[3]!.value, -Infinity);
  assert.ok(Number.isNaN(w.samples[4]!.value));
  assert.deepEqual(w.samples[5], { name: 'weird_total', labels: { k: 'keep', odd: '\\t' }, value: 0.003 });
  assert.equal(w.samples.length, 6);
  assert.deepEqual(fams.get('untyped_thing'), { name: 'untyped_thing', type: 'untyped', help: '', samples: [{ name: 'untyped_thing', labels: {}, value: 42 }] });
  assert.equal(fams.size, 2);
});

test('skips malformed lines and keeps the good ones around them', () => {
  const bad = [
    'm{a="unterminated} 1',
    'm{a=unquoted} 1',
    'm{a="1",a="2"} 1',
    'm{a="1" b="2"} 1',
    'm{="x"} 1',
    'm{9a="x"} 1',
    'm{a="1"',
    'm',
    'm ',
    'm one',
    'm 0x10',
    'm 1_000',
    'm 1 2 3',
    'm 1 1.5',
    'm 1 soon',
    '{a="1"} 1',
    '9m 1',
    'm-dash 1',
    'm\u00e9 1',
  ];
  const good = ['m 1', 'm{a="ok"} 2', 'm{a="ok",} 3 1700000000000'];
  const text = ['# TYPE m gauge', good[0], ...bad, good[1], ...bad, good[2]].join('\n');
  let fams: Map<string, MetricFamily> | undefined;
  assert.doesNotThrow(() => {
    fams = parsePrometheusText(text);
  });
  const m = fams!.get('m')!;
  assert.deepEqual(
    m.samples.map((s) => s.value),
    [1, 2, 3],
  );
  assert.equal(fams!.size, 1);
  // Garbage that is not exposition at all.
  assert.equal(parsePrometheusText('<html>\n<body>502 Bad Gateway</body>\n</html>\n').size, 0);
  assert.equal(parsePrometheusText('').size, 0);
});

test('keeps a __proto__ label as an ordinary label', () => {
  const s = parsePrometheusText('x{__proto__="p",constructor="c"} 1').get('x')!.samples[0]!;
  assert.equal(Object.getPrototypeOf(s.labels), Object.prototype);
  assert.deepEqual(Object.entries(s.labels), [
    ['__proto__', 'p'],
    ['constructor', 'c'],
  ]);
});

test('parseValue reads Go float syntax only', () => {
  assert.equal(parseValue('1.5e+06'), 1_500_000);
  assert.equal(parseValue('-0.25'), -0.25);
  assert.equal(parseValue('.5'), 0.5);
  assert.equal(parseValue('+Inf'), Infinity);
  assert.equal(parseValue('-inf'), -Infinity);
  assert.ok(Number.isNaN(parseValue('NaN')!));
  for (const bad of ['', '0x1f', '0b1', '0o7', 'one', '1,5', '+NaN']) assert.equal(parseValue(bad), undefined, bad);
});

test('only= skips other families, including the suffixed samples of a skipped histogram', () => {
  const text = apiserverText([requestSeries('GET', 'pods', { '0.005': 4 })]);
  const seen: string[] = [];
  const fams = parsePrometheusText(text, {
    only: (name) => {
      seen.push(name);
      return name === 'apiserver_current_inflight_requests';
    },
  });
  assert.deepEqual([...fams.keys()], ['apiserver_current_inflight_requests']);
  assert.equal(fams.get('apiserver_current_inflight_requests')!.samples.length, 2);
  // Asked once per family name, never for `_bucket`, `_sum` or `_count` names of a declared histogram.
  assert.ok(!seen.some((n) => n.startsWith('apiserver_request_duration_seconds_')));
  assert.equal(new Set(seen).size, seen.length);

  const h = parsePrometheusText(text, { only: (n) => n === 'apiserver_request_duration_seconds' }).get('apiserver_request_duration_seconds')!;
  assert.equal(h.type, 'histogram');
  assert.equal(h.samples.length, APISERVER_BOUNDS.length + 2);
});

// ---- histograms ----------------------------------------------------------------------------------

test('histogramBuckets sums cumulative counts over matching label sets, sorted by le', () => {
  const text = `# TYPE h histogram
h_bucket{verb="GET",le="+Inf"} 10
h_bucket{verb="GET",le="1"} 8
h_bucket{verb="GET",le="0.5"} 5
h_sum{verb="GET"} 4
h_count{verb="GET"} 10
h_bucket{verb="WATCH",le="0.5"} 0
h_bucket{verb="WATCH",le="1"} 0
h_bucket{verb="WATCH",le="+Inf"} 7
h_bucket{verb="LIST",le="0.5"} 1
h_bucket{verb="LIST",le="1"} 2
h_bucket{verb="LIST",le="+Inf"} 2
`;
  const h = parsePrometheusText(text).get('h');
  assert.deepEqual(histogramBuckets(h), [
    { le: 0.5, count: 6 },
    { le: 1, count: 10 },
    { le: Infinity, count: 19 },
  ]);
  assert.deepEqual(
    histogramBuckets(h, (l) => l.verb !== 'WATCH'),
    [
      { le: 0.5, count: 6 },
      { le: 1, count: 10 },
      { le: Infinity, count: 12 },
    ],
  );
  assert.deepEqual(histogramBuckets(undefined), []);
});

/** Equal up to floating-point rounding. */
function near(actual: number | undefined, expected: number): void {
  assert.ok(actual !== undefined && Math.abs(actual - expected) < 1e-12, `${actual} ≉ ${expected}`);
}

const B = (pairs: [number, number][]): Bucket[] => pairs.map(([le, count]) => ({ le, count }));

test('quantileFromBuckets interpolates like histogram_quantile', () => {
  const b = B([
    [0.1, 10],
    [0.5, 30],
    [1, 40],
    [Infinity, 40],
  ]);
  // rank 20 lies 10 into the 20 observations of (0.1, 0.5]: 0.1 + 0.4 × 10/20.
  near(quantileFromBuckets(0.5, b), 0.3);
  // rank 4 of the 10 in (0, 0.1]: the first bucket starts at 0.
  near(quantileFromBuckets(0.1, b), 0.04);
  assert.equal(quantileFromBuckets(0.25, b), 0.1);
  // rank 39.6 lies 9.6 into the 10 of (0.5, 1]: 0.5 + 0.5 × 0.96.
  near(quantileFromBuckets(0.99, b), 0.98);
  assert.equal(quantileFromBuckets(1, b), 1);
  assert.equal(quantileFromBuckets(0, b), 0);
  assert.equal(quantileFromBuckets(1.5, b), Infinity);
  assert.equal(quantileFromBuckets(-1, b), -Infinity);

  // Rank in the +Inf bucket: the highest finite bound.
  const tail = B([
    [0.1, 10],
    [1, 20],
    [Infinity, 100],
  ]);
  assert.equal(quantileFromBuckets(0.99, tail), 1);
  // A first bound ≤ 0 is returned as is rather than interpolated from 0.
  assert.equal(
    quantileFromBuckets(
      0.2,
      B([
        [0, 5],
        [1, 10],
        [Infinity, 10],
      ]),
    ),
    0,
  );
  // A bucket below its predecessor (a racing scrape) is raised to it: counts 10, 10, 20.
  assert.equal(
    quantileFromBuckets(
      0.5,
      B([
        [0.1, 10],
        [0.5, 9],
        [Infinity, 20],
      ]),
    ),
    0.1,
  );

  assert.equal(quantileFromBuckets(0.99, B([[0.1, 0], [Infinity, 0]])), undefined, 'nothing observed');
  assert.equal(quantileFromBuckets(0.99, B([[0.1, 3], [1, 5]])), undefined, 'no +Inf bucket');
  assert.equal(quantileFromBuckets(0.99, B([[Infinity, 5]])), undefined, 'one bucket');
  assert.equal(quantileFromBuckets(0.99, []), undefined);
  assert.equal(quantileFromBuckets(NaN, b), undefined);
});

test('bucketsDelta subtracts per le and falls back to the current counts after a restart', () => {
  const prev = B([
    [0.1, 10],
    [1, 15],
    [Infinity, 16],
  ]);
  const cur = B([
    [0.1, 12],
    [1, 20],
    [Infinity, 30],
  ]);
  assert.deepEqual(
    bucketsDelta(prev, cur),
    B([
      [0.1, 2],
      [1, 5],
      [Infinity, 14],
    ]),
  );
  const restarted = B([
    [0.1, 3],
    [1, 3],
    [Infinity, 40],
  ]);
  assert.deepEqual(bucketsDelta(prev, restarted), restarted);
  const rebucketed = B([
    [0.2, 12],
    [1, 20],
    [Infinity, 30],
  ]);
  assert.deepEqual(bucketsDelta(prev, rebucketed), rebucketed);
  assert.deepEqual(bucketsDelta([], cur), cur);
  assert.deepEqual(bucketsDelta(prev, prev), B([[0.1, 0], [1, 0], [Infinity, 0]]));
});

// ---- extractors -----------------------------------------------------------------------------------

test('extractEtcd reads leadership, db size and the WAL fsync p99 between scrapes', () => {
  const first = extractEtcd('cp-1', etcdText([100, 200, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300], { changes: 2 }));
  assert.deepEqual(first.metrics, { machine: 'cp-1', hasLeader: true, isLeader: false, leaderChangesTotal: 2, dbSizeBytes: 20_897_792 });

  // 100 more fsyncs: 50 in (0.004, 0.008], 50 in (0.008, 0.016]. Rank 99 lies 49 into the second
  // 50: 0.008 + 0.008 × 49/50.
  const second = extractEtcd('cp-1', etcdText([100, 200, 300, 350, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400], { leader: true }), first.state);
  assert.equal(second.metrics.isLeader, true);
  near(second.metrics.walFsyncP99Seconds, 0.01584);

  // No fsync since the previous scrape: nothing to say.
  const idle = extractEtcd('cp-1', etcdText([100, 200, 300, 350, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400]), second.state);
  assert.equal(idle.metrics.walFsyncP99Seconds, undefined);
  assert.ok(!('walFsyncP99Seconds' in idle.metrics));

  // Restarted etcd: its counters began again, so all it counted is new.
  const restarted = extractEtcd('cp-1', etcdText([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 10, 10, 10, 10]), idle.state);
  near(restarted.metrics.walFsyncP99Seconds, 0.512 + 0.512 * 0.99);
});

test('extractEtcd falls back to the pre-3.4 db size name and copes with an empty scrape', () => {
  const old = '# TYPE etcd_debugging_mvcc_db_total_size_in_bytes gauge\netcd_debugging_mvcc_db_total_size_in_bytes 4096\n';
  assert.equal(extractEtcd('cp-2', old).metrics.dbSizeBytes, 4096);
  assert.deepEqual(extractEtcd('cp-2', '', { walFsyncBuckets: [] }), {
    metrics: { machine: 'cp-2', hasLeader: false, isLeader: false, leaderChangesTotal: 0, dbSizeBytes: 0 },
    state: { walFsyncBuckets: [] },
  });
});

test('extractApiServer computes the request p99 without WATCH and CONNECT, and in-flight requests', () => {
  const first = extractApiServer(
    'cp-1',
    apiserverText([requestSeries('GET', 'pods', { '0.005': 100 }), requestSeries('WATCH', 'pods', { '+Inf': 50 }), requestSeries('CONNECT', 'pods', { '60': 3 })]),
  );
  assert.deepEqual(first.metrics, { machine: 'cp-1', inflightRequests: 10 });

  // 100 more GETs and LISTs: 90 in (0, 0.005], 10 in (0.025, 0.05]; and many long watches that
  // would put the p99 at 60 s if counted. Rank 99 lies 9 into the last 10: 0.025 + 0.025 × 9/10.
  const second = extractApiServer(
    'cp-1',
    apiserverText([
      requestSeries('GET', 'pods', { '0.005': 190 }),
      requestSeries('LIST', 'nodes', { '0.05': 10 }),
      requestSeries('WATCH', 'pods', { '+Inf': 5000 }),
      requestSeries('CONNECT', 'pods', { '60': 300 }),
    ]),
    first.state,
  );
  near(second.metrics.requestP99Seconds, 0.0475);
  assert.equal(second.metrics.inflightRequests, 10);

  // Without apiserver_current_inflight_requests, APF's executing requests are summed.
  const apf = extractApiServer('cp-1', apiserverText([], false), second.state);
  assert.equal(apf.metrics.inflightRequests, 5);
  // The histogram vanished (a restart before any request): nothing observed, no p99.
  assert.equal(apf.metrics.requestP99Seconds, undefined);
  assert.equal(extractApiServer('cp-1', 'up 1\n').metrics.inflightRequests, 0);
});

test('extractAgent sums the processes and averages CPU cores between scrapes', () => {
  const first = extractAgent('m-1', agentText({ agent: 1.25, etcd: 9.25 }), undefined, 1_000_000);
  assert.deepEqual(first.metrics, { machine: 'm-1', rssBytes: 181_440_000, diskUsedBytes: 734_003_200 });
  assert.deepEqual(first.state, { atMs: 1_000_000, cpuSeconds: 10.5 });

  const second = extractAgent('m-1', agentText({ agent: 1.5, etcd: 11 }), first.state, 1_004_000);
  assert.equal(second.metrics.cpuCores, 0.5);

  // etcd restarted: its CPU seconds began again and the sum went down.
  const third = extractAgent('m-1', agentText({ agent: 2, etcd: 0.5 }), second.state, 1_009_000);
  assert.equal(third.metrics.cpuCores, undefined);
  assert.equal(extractAgent('m-1', agentText({ agent: 2.5, etcd: 1 }), third.state, 1_010_000).metrics.cpuCores, 1);

  // Same instant (clock did not move): no division by zero.
  assert.equal(extractAgent('m-1', agentText({ agent: 3, etcd: 1 }), third.state, 1_009_000).metrics.cpuCores, undefined);
});

// ---- round trip ---------------------------------------------------------------------------------

/** A minimal exposition writer, with optional harmless variations a reader must accept. */
function serialize(families: MetricFamily[], v: { crlf: boolean; timestamps: boolean; trailingComma: boolean; blanks: boolean }): string {
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
  const escLabel = (s: string) => esc(s).replace(/"/g, '\\"');
  const num = (x: number) => (Number.isNaN(x) ? 'NaN' : x === Infinity ? '+Inf' : x === -Infinity ? '-Inf' : Object.is(x, -0) ? '-0' : String(x));
  const sp = v.blanks ? ' \t ' : ' ';
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${esc(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const pairs = Object.entries(s.labels).map(([k, val]) => `${k}="${escLabel(val)}"`);
      const set = pairs.length > 0 || v.trailingComma ? `{${pairs.join(',')}${v.trailingComma && pairs.length > 0 ? ',' : ''}}` : '';
      lines.push(`${s.name}${set}${sp}${num(s.value)}${v.timestamps ? `${sp}1712345678901` : ''}`);
    }
    if (v.blanks) lines.push('', '# just a comment');
  }
  return lines.join(v.crlf ? '\r\n' : '\n') + '\n';
}

const metricName = fc.stringMatching(/^[a-zA-Z_:][a-zA-Z0-9_:]{0,15}$/);
const labelName = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,10}$/);
const labelSet = fc
  .uniqueArray(fc.tuple(labelName, fc.string({ unit: 'binary', maxLength: 12 })), { selector: ([k]) => k, maxLength: 4 })
  .map((pairs) => Object.fromEntries(pairs) as Record<string, string>);
const familyArb = (index: number) =>
  fc
    .record({
      base: metricName,
      type: fc.constantFrom<MetricType>('counter', 'gauge', 'histogram', 'summary', 'untyped'),
      // A HELP text cannot begin with blanks (they separate it from the name) nor end in a CR
      // (taken for a CRLF line end).
      help: fc.string({ unit: 'binary', maxLength: 30 }).map((s) => s.replace(/\r/g, '').replace(/^[ \t]+/, '')),
      samples: fc.array(fc.tuple(fc.nat(2), labelSet, fc.double()), { maxLength: 6 }),
    })
    .map(({ base, type, help, samples }): MetricFamily => {
      // The index keeps names distinct and never ending in a histogram suffix.
      const name = `${base}_f${index}`;
      const suffixes = type === 'histogram' ? ['_bucket', '_sum', '_count'] : type === 'summary' ? ['', '_sum', '_count'] : [''];
      return { name, type, help, samples: samples.map(([k, labels, value]) => ({ name: name + suffixes[k % suffixes.length], labels, value })) };
    });

test('property: generated families round-trip through the text format', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 4 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => familyArb(i)))),
      fc.record({ crlf: fc.boolean(), timestamps: fc.boolean(), trailingComma: fc.boolean(), blanks: fc.boolean() }),
      (families, variations) => {
        const parsed = parsePrometheusText(serialize(families, variations));
        assert.deepStrictEqual([...parsed.values()], families);
      },
    ),
    { numRuns: 300 },
  );
});

// ---- size ---------------------------------------------------------------------------------------

test('parses a 2 MB apiserver scrape', (t) => {
  const verbs = ['GET', 'LIST', 'WATCH', 'CREATE', 'UPDATE', 'PATCH', 'DELETE'];
  const resources = Array.from({ length: 80 }, (_, i) => `resource${i}s`);
  const series: string[] = [];
  const noise: string[] = ['# HELP apiserver_response_sizes [STABLE] Response size distribution in bytes for each group, version, verb, resource, subresource, scope and component.', '# TYPE apiserver_response_sizes histogram'];
  let i = 0;
  let size = 0;
  let nonWatch = 0;
  while (size < 2_000_000) {
    const verb = verbs[i % verbs.length]!;
    const resource = resources[Math.floor(i / verbs.length) % resources.length]!;
    const one = requestSeries(verb, resource, { '0.005': 5, '0.1': 1, '+Inf': verb === 'WATCH' ? 2 : 0 });
    series.push(one);
    size += one.length;
    if (verb !== 'WATCH') nonWatch++;
    for (const le of ['100', '1000', '10000', '100000', '1e+06', '1e+07', '1e+08', '1e+09', '+Inf']) {
      const line = `apiserver_response_sizes_bucket{component="apiserver",group="",resource="${resource}",scope="cluster",subresource="",verb="${verb}",version="v1",le="${le}"} ${i}`;
      noise.push(line);
      size += line.length;
    }
    i++;
  }
  const text = apiserverText(series) + noise.join('\n') + '\n';
  assert.ok(text.length >= 2_000_000);

  const started = performance.now();
  const { metrics, state } = extractApiServer('cp-1', text);
  const filtered = performance.now() - started;
  assert.equal(metrics.inflightRequests, 10);
  assert.deepEqual(state.requestBuckets.at(-1), { le: Infinity, count: nonWatch * 6 });
  assert.equal(state.requestBuckets.length, APISERVER_BOUNDS.length);

  const started2 = performance.now();
  const all = parsePrometheusText(text);
  const full = performance.now() - started2;
  assert.equal(all.get('apiserver_request_duration_seconds')!.samples.length, i * (APISERVER_BOUNDS.length + 2));
  assert.equal(all.get('apiserver_response_sizes')!.samples.length, i * 9);
  t.diagnostic(`${(text.length / 1e6).toFixed(1)} MB: extractApiServer ${filtered.toFixed(1)} ms, full parse ${full.toFixed(1)} ms`);
});
