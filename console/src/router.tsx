// A small History API router: the console's pages live under /console/ (the server answers every
// such path with the app), links are real <a href> elements, and the back button works.
import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent, type ReactNode } from 'react';

export const BASE = '/console';
const EVENT = 'marina:navigate';

function subscribe(cb: () => void): () => void {
  window.addEventListener('popstate', cb);
  window.addEventListener(EVENT, cb);
  return () => {
    window.removeEventListener('popstate', cb);
    window.removeEventListener(EVENT, cb);
  };
}

function currentPath(): string {
  const p = window.location.pathname;
  const rest = p.startsWith(BASE) ? p.slice(BASE.length) : p;
  return rest === '' ? '/' : rest;
}

/** The path inside the console (`/projects/default/clusters`). */
export function usePath(): string {
  return useSyncExternalStore(subscribe, currentPath);
}

export function href(to: string): string {
  return BASE + to;
}

export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  if (opts.replace) window.history.replaceState(null, '', href(to));
  else window.history.pushState(null, '', href(to));
  window.dispatchEvent(new Event(EVENT));
}

export function Link({ to, children, ...rest }: { to: string; children: ReactNode } & Omit<AnchorHTMLAttributes<HTMLAnchorElement>, 'href'>) {
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    rest.onClick?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(to);
  };
  return (
    <a {...rest} href={href(to)} onClick={onClick}>
      {children}
    </a>
  );
}

export type Route =
  | { page: 'login' }
  | { page: 'projects' }
  | { page: 'clusters'; project: string }
  | { page: 'create'; project: string }
  | { page: 'cluster'; project: string; name: string }
  | { page: 'alerts'; project: string }
  | { page: 'channels'; project: string }
  | { page: 'functions'; project: string }
  | { page: 'function'; project: string; name: string }
  | { page: 'deadletters'; project: string }
  | { page: 'pipelines'; project: string }
  | { page: 'pipeline'; project: string; name: string }
  | { page: 'run'; project: string; name: string; run: string }
  | { page: 'notfound'; path: string };

export function matchRoute(path: string): Route {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const [a, project, b, name, ...more] = parts;
  if (parts.length === 0) return { page: 'projects' };
  if (a === 'login' && parts.length === 1) return { page: 'login' };
  if (a === 'projects' && parts.length === 1) return { page: 'projects' };
  if (a === 'projects' && project) {
    if (b === undefined || (b === 'clusters' && name === undefined)) return { page: 'clusters', project };
    if (b === 'create-cluster' && name === undefined) return { page: 'create', project };
    if (b === 'clusters' && name && more.length === 0) return { page: 'cluster', project, name };
    if (b === 'alerts' && name === undefined) return { page: 'alerts', project };
    if (b === 'channels' && name === undefined) return { page: 'channels', project };
    if (b === 'functions' && name === undefined) return { page: 'functions', project };
    if (b === 'functions' && name && more.length === 0) return { page: 'function', project, name };
    if (b === 'deadletters' && name === undefined) return { page: 'deadletters', project };
    if (b === 'pipelines' && name === undefined) return { page: 'pipelines', project };
    if (b === 'pipelines' && name && more.length === 0) return { page: 'pipeline', project, name };
    if (b === 'pipelines' && name && more[0] === 'runs' && more[1] && more.length === 2) return { page: 'run', project, name, run: more[1] };
  }
  return { page: 'notfound', path };
}

export const paths = {
  projects: () => '/projects',
  clusters: (p: string) => `/projects/${encodeURIComponent(p)}/clusters`,
  create: (p: string) => `/projects/${encodeURIComponent(p)}/create-cluster`,
  cluster: (p: string, c: string) => `/projects/${encodeURIComponent(p)}/clusters/${encodeURIComponent(c)}`,
  alerts: (p: string) => `/projects/${encodeURIComponent(p)}/alerts`,
  channels: (p: string) => `/projects/${encodeURIComponent(p)}/channels`,
  functions: (p: string) => `/projects/${encodeURIComponent(p)}/functions`,
  function: (p: string, f: string) => `/projects/${encodeURIComponent(p)}/functions/${encodeURIComponent(f)}`,
  deadLetters: (p: string) => `/projects/${encodeURIComponent(p)}/deadletters`,
  pipelines: (p: string) => `/projects/${encodeURIComponent(p)}/pipelines`,
  pipeline: (p: string, n: string) => `/projects/${encodeURIComponent(p)}/pipelines/${encodeURIComponent(n)}`,
  run: (p: string, n: string, r: string) => `/projects/${encodeURIComponent(p)}/pipelines/${encodeURIComponent(n)}/runs/${encodeURIComponent(r)}`,
};
