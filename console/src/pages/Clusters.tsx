import type { ClusterView } from '../../../src/console-lib/types.js';
import { formatAge } from '../../../src/console-lib/format.js';
import { clusterSummary } from '../../../src/console-lib/summary.js';
import { Link, paths } from '../router.js';
import { useLive, useNow } from '../session.js';
import { Badge, ListState, Page } from '../components/ui.js';

export function ClustersPage({ project }: { project: string }) {
  const clusters = useLive<ClusterView>('Cluster', project);
  const now = useNow();
  return (
    <Page
      title={`Clusters in ${project}`}
      live={clusters}
      actions={
        <Link to={paths.create(project)} className="button primary">
          Create cluster
        </Link>
      }
    >
      <ListState live={clusters} empty="No clusters in this project yet.">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Phase</th>
              <th scope="col">Ready</th>
              <th scope="col">Machines ready</th>
              <th scope="col">Health</th>
              <th scope="col">Version</th>
              <th scope="col">Age</th>
              <th scope="col">Needs attention</th>
            </tr>
          </thead>
          <tbody>
            {clusters.items.map((c) => {
              const s = clusterSummary(c);
              return (
                <tr key={c.metadata.name} data-cluster={c.metadata.name}>
                  <th scope="row">
                    <Link to={paths.cluster(project, c.metadata.name)}>{c.metadata.name}</Link>
                  </th>
                  <td>
                    <Badge tone={s.tone}>{s.phase}</Badge>
                  </td>
                  <td>{s.ready}</td>
                  <td>{s.pools}</td>
                  <td>{s.health ? <Badge tone={s.healthTone ?? 'neutral'}>{s.health}</Badge> : <span className="muted">no data yet</span>}</td>
                  <td>{c.status?.kubernetesVersion ?? c.spec?.kubernetesVersion ?? '-'}</td>
                  <td>{formatAge(c.metadata.creationTimestamp, now)}</td>
                  <td className="wrap">{s.problem ?? ''}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </ListState>
    </Page>
  );
}
