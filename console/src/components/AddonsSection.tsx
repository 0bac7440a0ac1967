import { useMemo } from 'react';
import { addonRows, type AddonView } from '../../../src/console-lib/addons.js';
import { formatTime } from '../../../src/console-lib/format.js';
import { useLive } from '../session.js';
import { Badge, Section } from './ui.js';

/** The add-ons of one cluster with their health, live. Enable and disable with `marina addon`. */
export function AddonsSection({ project, cluster }: { project: string; cluster: string }) {
  const live = useLive<AddonView>('Addon', project);
  const rows = useMemo(() => addonRows(live.items, cluster), [live.items, cluster]);
  return (
    <Section id="addons" title="Add-ons">
      {rows.length === 0 ? (
        <p className="muted">{live.synced ? 'No add-ons on this cluster.' : 'Loading…'}</p>
      ) : (
        <table data-testid="addons">
          <thead>
            <tr>
              <th scope="col">Add-on</th>
              <th scope="col">Version</th>
              <th scope="col">State</th>
              <th scope="col">Objects</th>
              <th scope="col">Drift corrected</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.name}>
                <td>{r.addon}</td>
                <td>{r.version}</td>
                <td>
                  <Badge tone={r.tone}>{r.state}</Badge>
                  {r.detail && <div className="muted small">{r.detail}</div>}
                </td>
                <td>{r.objects}</td>
                <td>
                  {r.drift}
                  {r.lastDrift && <span className="muted small"> (last {formatTime(r.lastDrift)})</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}
