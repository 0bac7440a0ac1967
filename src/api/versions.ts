// Kubernetes versions as Marina compares them, and the skew rules of an upgrade (Kubernetes'
// version skew policy): one minor at a time, never a minor downgrade, kubelets never newer than
// the apiservers. Shared by the API edge, the Cluster controller (upgrade order) and the Upgrade
// operation's preflight.

export interface Version {
  major: number;
  minor: number;
  patch: number;
}

export function parseVersion(v: string): Version | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(v);
  return m ? { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) } : undefined;
}

/** <0, 0, >0 like a sort comparator; unparsable versions sort first. */
export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a);
  const y = parseVersion(b);
  if (!x || !y) return (x ? 1 : 0) - (y ? 1 : 0);
  return x.major - y.major || x.minor - y.minor || x.patch - y.patch;
}

/** The oldest of `versions` (undefined for none). */
export function oldestVersion(versions: Iterable<string>): string | undefined {
  let oldest: string | undefined;
  for (const v of versions) if (oldest === undefined || compareVersions(v, oldest) < 0) oldest = v;
  return oldest;
}

/**
 * Why a cluster whose machines run `running` (every version found among them) may not move to
 * `target`, or undefined: at most one minor above the oldest running version, no minor below the
 * newest, within the same major.
 */
export function upgradeProblem(running: readonly string[], target: string): string | undefined {
  const t = parseVersion(target);
  if (!t) return `${target} is not a version vX.Y.Z`;
  for (const v of running) {
    const r = parseVersion(v);
    if (!r) return `cannot read the running version ${v}`;
    if (r.major !== t.major) return `${v} → ${target}: a change of major version is not supported`;
    if (t.minor > r.minor + 1) return `${v} → ${target}: one minor version at a time (upgrade to v${r.major}.${r.minor + 1} first)`;
    if (t.minor < r.minor) return `${v} → ${target}: a minor downgrade is not supported (etcd may hold objects ${v} wrote that ${target} cannot read)`;
  }
  return undefined;
}
