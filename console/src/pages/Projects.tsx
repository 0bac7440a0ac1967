import type { ProjectView } from '../../../src/console-lib/types.js';
import { formatAge } from '../../../src/console-lib/format.js';
import { Link, paths } from '../router.js';
import { useLive, useNow, useSession } from '../session.js';
import { ListState, Page } from '../components/ui.js';

export function ProjectsPage() {
  const { me } = useSession();
  const projects = useLive<ProjectView>('Project', undefined);
  const now = useNow(10_000);
  const roleOf = (name: string) => me.projects.find((p) => p.name === name)?.role ?? (me.platformAdmin ? 'platform admin' : '-');
  return (
    <Page title="Projects" live={projects}>
      {me.platformAdmin && <p className="muted">You are a platform administrator: you see every project.</p>}
      <ListState live={projects} empty="You are not a member of any project yet. Ask a platform administrator to add you.">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Display name</th>
              <th scope="col">Your role</th>
              <th scope="col">Members</th>
              <th scope="col">Age</th>
            </tr>
          </thead>
          <tbody>
            {projects.items.map((p) => (
              <tr key={p.metadata.name}>
                <th scope="row">
                  <Link to={paths.clusters(p.metadata.name)}>{p.metadata.name}</Link>
                </th>
                <td>{p.spec?.displayName ?? ''}</td>
                <td>{roleOf(p.metadata.name)}</td>
                <td>{p.spec?.members?.length ?? 0}</td>
                <td>{formatAge(p.metadata.creationTimestamp, now)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </ListState>
    </Page>
  );
}
