// A small SVG line chart for the health time series: one line per series on a shared time axis,
// y from 0 to a rounded maximum, the newest value of each series in the legend (also the chart's
// accessible description).
import { downsample, niceMax, type Series } from '../../../src/console-lib/health.js';

const W = 560;
const H = 180;
const PAD = { left: 64, right: 12, top: 10, bottom: 24 };
const COLORS = ['#0e7490', '#c2410c', '#7c3aed', '#15803d', '#be123c', '#a16207', '#1d4ed8', '#4b5563'];

function hhmm(t: number): string {
  const d = new Date(t);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

export function LineChart({ title, series, format }: { title: string; series: Series[]; format: (v: number) => string }) {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    return (
      <figure className="chart">
        <figcaption>{title}</figcaption>
        <p className="muted">No data yet.</p>
      </figure>
    );
  }
  let t0 = Infinity;
  let t1 = -Infinity;
  let vmax = 0;
  for (const p of all) {
    if (p.t < t0) t0 = p.t;
    if (p.t > t1) t1 = p.t;
    if (p.v > vmax) vmax = p.v;
  }
  if (t1 === t0) t1 = t0 + 1;
  const ymax = niceMax(vmax);
  const x = (t: number) => PAD.left + ((t - t0) / (t1 - t0)) * (W - PAD.left - PAD.right);
  const y = (v: number) => H - PAD.bottom - (v / ymax) * (H - PAD.top - PAD.bottom);
  const latest = series.map((s) => ({ name: s.name, v: s.points.at(-1)?.v }));
  const description = latest.map((l) => `${l.name} ${l.v === undefined ? 'no data' : format(l.v)}`).join(', ');
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${title}, latest: ${description}`}>
        {[0, 0.5, 1].map((f) => (
          <g key={f}>
            <line x1={PAD.left} x2={W - PAD.right} y1={y(ymax * f)} y2={y(ymax * f)} className="grid" />
            <text x={PAD.left - 6} y={y(ymax * f) + 4} textAnchor="end" className="axis">
              {format(ymax * f)}
            </text>
          </g>
        ))}
        <text x={PAD.left} y={H - 6} className="axis">
          {hhmm(t0)}
        </text>
        <text x={W - PAD.right} y={H - 6} textAnchor="end" className="axis">
          {hhmm(t1)}
        </text>
        {series.map((s, i) => {
          const pts = downsample(s.points, 400);
          const color = COLORS[i % COLORS.length];
          if (pts.length === 1) return <circle key={s.name} cx={x(pts[0]!.t)} cy={y(pts[0]!.v)} r={3} fill={color} />;
          return <polyline key={s.name} fill="none" stroke={color} strokeWidth={1.75} points={pts.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ')} />;
        })}
      </svg>
      <ul className="legend">
        {latest.map((l, i) => (
          <li key={l.name}>
            <span className="swatch" style={{ background: COLORS[i % COLORS.length] }} aria-hidden="true" />
            {l.name}: {l.v === undefined ? '-' : format(l.v)}
          </li>
        ))}
      </ul>
    </figure>
  );
}
