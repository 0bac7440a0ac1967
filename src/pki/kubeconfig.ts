// kubeconfig files (clientcmd v1) with embedded CA and client credentials.
import { stringify } from 'yaml';

export interface KubeconfigOptions {
  /** API server URL, e.g. https://127.0.10.1:6443. */
  server: string;
  /** PEM of the CA that signed the API server's serving certificate. */
  caPem: string;
  /** Name of the user entry (e.g. "admin", "system:kube-scheduler"). */
  userName: string;
  /** Client certificate + key PEM (x509 authentication). */
  clientCertPem?: string;
  clientKeyPem?: string;
  /** Bearer token (alternative to a client certificate). */
  token?: string;
  /** Cluster entry name (default "marina"). */
  clusterName?: string;
  /** Context name (default `${userName}@${clusterName}`). */
  contextName?: string;
  /** Default namespace of the context. */
  namespace?: string;
  /** TLS server name to verify instead of the URL's host. */
  tlsServerName?: string;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** The kubeconfig as a plain object (apiVersion v1, kind Config). */
export function buildKubeconfigObject(options: KubeconfigOptions): Record<string, unknown> {
  if (!/^https?:\/\//.test(options.server)) throw new Error(`kubeconfig server must be a URL: ${options.server}`);
  if ((options.clientCertPem === undefined) !== (options.clientKeyPem === undefined)) {
    throw new Error('kubeconfig: clientCertPem and clientKeyPem go together');
  }
  const clusterName = options.clusterName ?? 'marina';
  const contextName = options.contextName ?? `${options.userName}@${clusterName}`;
  const user: Record<string, string> = {};
  if (options.clientCertPem !== undefined && options.clientKeyPem !== undefined) {
    user['client-certificate-data'] = b64(options.clientCertPem);
    user['client-key-data'] = b64(options.clientKeyPem);
  }
  if (options.token !== undefined) user.token = options.token;
  const cluster: Record<string, string> = {
    server: options.server,
    'certificate-authority-data': b64(options.caPem),
  };
  if (options.tlsServerName) cluster['tls-server-name'] = options.tlsServerName;
  const context: Record<string, string> = { cluster: clusterName, user: options.userName };
  if (options.namespace) context.namespace = options.namespace;
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: clusterName, cluster }],
    users: [{ name: options.userName, user }],
    contexts: [{ name: contextName, context }],
    'current-context': contextName,
    preferences: {},
  };
}

/** The kubeconfig as YAML text. */
export function buildKubeconfig(options: KubeconfigOptions): string {
  return stringify(buildKubeconfigObject(options), { lineWidth: 0 });
}
