// The console's frame: login gate, top navigation, and the page for the current path.
import { useEffect } from 'react';
import type { AlertView } from '../../src/console-lib/types.js';
import { alertCounts } from '../../src/console-lib/summary.js';
import { AuthProvider, useAuth, useLive, useSession } from './session.js';
import { Link, matchRoute, navigate, paths, usePath, type Route } from './router.js';
import { LoginPage } from './pages/Login.js';
import { ProjectsPage } from './pages/Projects.js';
import { ClustersPage } from './pages/Clusters.js';
import { CreateClusterPage } from './pages/CreateCluster.js';
import { ClusterPage } from './pages/Cluster.js';
import { AlertsPage } from './pages/Alerts.js';
import { ChannelsPage } from './pages/Channels.js';
import { DeadLettersPage, FunctionPage, FunctionsPage } from './pages/Functions.js';
import { PipelinePage, PipelineRunPage, PipelinesPage } from './pages/Pipelines.js';

export function App() {
  return (
    <AuthProvider>
      <Gate />
    </AuthProvider>
  );
}

function Gate() {
  const { session, restoring } = useAuth();
  const route = matchRoute(usePath());

  useEffect(() => {
    if (restoring) return;
    if (!session && route.page !== 'login') {
      // Remember where the user wanted to go.
      sessionStorage.setItem('marina.console.next', window.location.pathname.replace(/^\/console/, '') || '/projects');
      navigate('/login', { replace: true });
    } else if (session && route.page === 'login') {
      const next = sessionStorage.getItem('marina.console.next');
      sessionStorage.removeItem('marina.console.next');
      navigate(next && next !== '/login' ? next : paths.projects(), { replace: true });
    }
  }, [session, restoring, route.page]);

  if (restoring) return <p className="muted boot">Checking your session…</p>;
  if (!session || route.page === 'login') return <LoginPage />;
  return <Shell route={route} />;
}

function Shell({ route }: { route: Route }) {
  const { me, logout } = useSession();
  const project = 'project' in route ? route.project : undefined;
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to={paths.projects()} className="brand">
          Marina
        </Link>
        <nav aria-label="Main">
          <ul>
            <li>
              <Link to={paths.projects()} aria-current={route.page === 'projects' ? 'page' : undefined}>
                Projects
              </Link>
            </li>
            {project && <ProjectNav project={project} route={route} />}
          </ul>
        </nav>
        <div className="user">
          <span>
            {me.user}
            {me.platformAdmin ? ' (platform admin)' : ''}
          </span>
          <button type="button" onClick={() => logout()}>
            Log out
          </button>
        </div>
      </header>
      <main id="main">
        <PageFor route={route} />
      </main>
    </>
  );
}

function ProjectNav({ project, route }: { project: string; route: Route }) {
  const alerts = useLive<AlertView>('Alert', project);
  const { firing } = alertCounts(alerts.items);
  const current = (page: Route['page'][]) => (page.includes(route.page) ? 'page' : undefined);
  return (
    <>
      <li className="project-name" aria-label={`Project ${project}`}>
        {project}
      </li>
      <li>
        <Link to={paths.clusters(project)} aria-current={current(['clusters', 'cluster', 'create'])}>
          Clusters
        </Link>
      </li>
      <li>
        <Link to={paths.alerts(project)} aria-current={current(['alerts'])}>
          Alerts
          {firing > 0 && (
            <span className="count" aria-label={`, ${firing} firing`}>
              {firing}
            </span>
          )}
        </Link>
      </li>
      <li>
        <Link to={paths.channels(project)} aria-current={current(['channels'])}>
          Notification channels
        </Link>
      </li>
      <li>
        <Link to={paths.functions(project)} aria-current={current(['functions', 'function', 'deadletters'])}>
          Functions
        </Link>
      </li>
      <li>
        <Link to={paths.pipelines(project)} aria-current={current(['pipelines', 'pipeline', 'run'])}>
          Pipelines
        </Link>
      </li>
    </>
  );
}

function PageFor({ route }: { route: Route }) {
  switch (route.page) {
    case 'projects':
      return <ProjectsPage />;
    case 'clusters':
      return <ClustersPage key={route.project} project={route.project} />;
    case 'create':
      return <CreateClusterPage key={route.project} project={route.project} />;
    case 'cluster':
      return <ClusterPage key={`${route.project}/${route.name}`} project={route.project} name={route.name} />;
    case 'alerts':
      return <AlertsPage key={route.project} project={route.project} />;
    case 'channels':
      return <ChannelsPage key={route.project} project={route.project} />;
    case 'functions':
      return <FunctionsPage key={route.project} project={route.project} />;
    case 'function':
      return <FunctionPage key={`${route.project}/${route.name}`} project={route.project} name={route.name} />;
    case 'deadletters':
      return <DeadLettersPage key={route.project} project={route.project} />;
    case 'pipelines':
      return <PipelinesPage key={route.project} project={route.project} />;
    case 'pipeline':
      return <PipelinePage key={`${route.project}/${route.name}`} project={route.project} name={route.name} />;
    case 'run':
      return <PipelineRunPage key={`${route.project}/${route.name}/${route.run}`} project={route.project} name={route.name} run={route.run} />;
    case 'login':
      return null;
    case 'notfound':
      return (
        <>
          <h1>Not found</h1>
          <p>
            The console has no page at <code>{route.path}</code>. <Link to={paths.projects()}>Go to the projects</Link>.
          </p>
        </>
      );
  }
}
