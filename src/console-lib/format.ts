// How the console shows times, sizes and durations.

/** `42s`, `5m`, `3h`, `2d` since `iso` (Kubernetes-style age); `-` when unknown. */
export function formatAge(iso: string | undefined, nowMs: number): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '-';
  const s = Math.max(0, Math.floor((nowMs - t) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

/** `2026-01-02 13:04:05` in the viewer's time zone (or UTC with `utc`); `-` when unknown. */
export function formatTime(iso: string | undefined, utc = false): string {
  if (!iso) return '-';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '-';
  const pad = (n: number) => String(n).padStart(2, '0');
  const [y, mo, da, h, mi, s] = utc
    ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
    : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
  return `${y}-${pad(mo)}-${pad(da)} ${pad(h)}:${pad(mi)}:${pad(s)}`;
}

/** `512 B`, `1.5 KiB`, `20.0 MiB`, `3.25 GiB`. */
export function formatBytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${Math.round(v)} B`;
  return `${v.toFixed(Math.abs(v) < 10 ? 2 : 1)} ${units[u]}`;
}

/** `850 ms`, `1.25 s`, `3m 20s`. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-';
  if (Math.abs(ms) < 1) return `${ms.toFixed(2)} ms`;
  if (Math.abs(ms) < 1000) return `${Math.round(ms)} ms`;
  if (Math.abs(ms) < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m ${s % 60}s`;
}

/** CPU cores: `0.25 cores`, `1.5 cores`, `12 mcores` below 0.1. */
export function formatCores(c: number | undefined): string {
  if (c === undefined || !Number.isFinite(c)) return '-';
  if (c < 0.1) return `${Math.round(c * 1000)} mcores`;
  return `${c.toFixed(2)} cores`;
}

/** Scheme and host of a URL: channel URLs may carry a secret in their path or user info. */
export function urlHost(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '(invalid URL)';
  }
}
