// IPv4 CIDR parsing and overlap checks for cluster network settings.

export interface Cidr {
  base: number; // network address as an unsigned 32-bit integer
  prefix: number;
}

export function parseIPv4(s: string): number | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

/** Parses `a.b.c.d/n`; the host bits must be zero, as Kubernetes requires for its CIDR flags. */
export function parseCidr(s: string): Cidr | string {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(s);
  if (!m) return `${JSON.stringify(s)} is not an IPv4 CIDR like 10.244.0.0/16`;
  const ip = parseIPv4(m[1]!);
  const prefix = Number(m[2]);
  if (ip === undefined) return `${JSON.stringify(m[1])} is not an IPv4 address`;
  if (prefix < 8 || prefix > 30) return `prefix /${prefix} must be between /8 and /30`;
  const size = 2 ** (32 - prefix);
  if (ip % size !== 0) return `${s} has host bits set; did you mean ${formatIPv4(ip - (ip % size))}/${prefix}?`;
  return { base: ip, prefix };
}

export function formatIPv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  const aEnd = a.base + 2 ** (32 - a.prefix);
  const bEnd = b.base + 2 ** (32 - b.prefix);
  return a.base < bEnd && b.base < aEnd;
}

/** The n-th address inside a CIDR (n=1: the first usable one, e.g. the kubernetes Service IP). */
export function nthAddress(c: Cidr, n: number): string {
  return formatIPv4(c.base + n);
}
