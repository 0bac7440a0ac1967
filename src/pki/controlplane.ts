// The certificates, keys and kubeconfigs of one control plane (kubeadm-like layout), written to disk.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type CertificateAuthority, createCA, issueCertificate, type IssuedCertificate } from './certs.js';
import { createServiceAccountKeyPair, type KeyAlgorithm } from './keys.js';
import { buildKubeconfig } from './kubeconfig.js';
import { KUBERNETES_SERVICE_NAMES, sanList } from './sans.js';

export interface ControlPlanePkiOptions {
  /** Output directory (created with mode 0700). */
  dir: string;
  /** Address clients use to reach kube-apiserver (IP or DNS name); goes into SANs and kubeconfigs. */
  apiServerHost: string;
  apiServerPort: number;
  /** Extra SANs for the API server certificate (IPs or DNS names), e.g. a load balancer. */
  apiServerExtraSANs?: string[];
  /** First IP of the service CIDR (the `kubernetes` Service), default 10.96.0.1. */
  serviceIP?: string;
  /** Addresses kube-controller-manager / kube-scheduler serve on (SANs of their serving certs). Default [apiServerHost]. */
  componentHosts?: string[];
  /** Addresses of the etcd members (SANs of the etcd server/peer certificates). Default [apiServerHost]. */
  etcdHosts?: string[];
  /** kubeconfig cluster name, default "marina". */
  clusterName?: string;
  keyAlgorithm?: KeyAlgorithm;
  /** Validity of CAs (default 3650 days) and leaves (default 365 days). */
  caValidityDays?: number;
  validityDays?: number;
}

/** Absolute paths of everything written. */
export interface ControlPlanePkiFiles {
  caCert: string;
  caKey: string;
  apiServerCert: string;
  apiServerKey: string;
  apiServerEtcdClientCert: string;
  apiServerEtcdClientKey: string;
  apiServerKubeletClientCert: string;
  apiServerKubeletClientKey: string;
  frontProxyCaCert: string;
  frontProxyCaKey: string;
  frontProxyClientCert: string;
  frontProxyClientKey: string;
  etcdCaCert: string;
  etcdCaKey: string;
  etcdServerCert: string;
  etcdServerKey: string;
  etcdPeerCert: string;
  etcdPeerKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
  /** Serving certificates of kube-controller-manager and kube-scheduler (signed by the cluster CA). */
  controllerManagerServingCert: string;
  controllerManagerServingKey: string;
  schedulerServingCert: string;
  schedulerServingKey: string;
  adminKubeconfig: string;
  controllerManagerKubeconfig: string;
  schedulerKubeconfig: string;
}

export interface ControlPlanePki {
  dir: string;
  files: ControlPlanePkiFiles;
  ca: CertificateAuthority;
  etcdCa: CertificateAuthority;
  frontProxyCa: CertificateAuthority;
  /** Admin client credentials (O=system:masters), e.g. for node:https requests. */
  admin: IssuedCertificate;
  apiServerURL: string;
  /** The earliest notAfter of all certificates written. */
  notAfter: Date;
  /** notAfter per certificate file. */
  expiries: Record<string, Date>;
}


/** Generates and writes the PKI of one control plane. */
export async function generateControlPlanePki(options: ControlPlanePkiOptions): Promise<ControlPlanePki> {
  const { dir } = options;
  await mkdir(join(dir, 'etcd'), { recursive: true, mode: 0o700 });
  const keyAlgorithm = options.keyAlgorithm;
  const validityDays = options.validityDays ?? 365;
  const caValidityDays = options.caValidityDays ?? 3650;
  const serviceIP = options.serviceIP ?? '10.96.0.1';
  const etcdHosts = options.etcdHosts ?? [options.apiServerHost];
  const clusterName = options.clusterName ?? 'marina';
  const apiServerURL = `https://${options.apiServerHost.includes(':') ? `[${options.apiServerHost}]` : options.apiServerHost}:${options.apiServerPort}`;

  const [ca, etcdCa, frontProxyCa, sa] = await Promise.all([
    createCA({ commonName: 'kubernetes', validityDays: caValidityDays, keyAlgorithm }),
    createCA({ commonName: 'etcd-ca', validityDays: caValidityDays, keyAlgorithm }),
    createCA({ commonName: 'front-proxy-ca', validityDays: caValidityDays, keyAlgorithm }),
    createServiceAccountKeyPair(keyAlgorithm),
  ]);

  const apiSANs = sanList(
    [
      ...KUBERNETES_SERVICE_NAMES,
      'localhost',
      '127.0.0.1',
      serviceIP,
      options.apiServerHost,
      ...(options.apiServerExtraSANs ?? []),
    ],
  );
  const etcdSANs = sanList((['localhost', '127.0.0.1', ...etcdHosts]));
  const componentSANs = sanList((['localhost', '127.0.0.1', ...(options.componentHosts ?? [options.apiServerHost])]));
  const leaf = { validityDays, keyAlgorithm };
  const [apiServer, etcdClient, kubeletClient, frontProxyClient, etcdServer, etcdPeer, admin, kcm, scheduler, kcmServing, schedulerServing] =
    await Promise.all([
      issueCertificate(ca, { commonName: 'kube-apiserver', usage: 'server', ...apiSANs, ...leaf }),
      issueCertificate(etcdCa, { commonName: 'kube-apiserver-etcd-client', usage: 'client', ...leaf }),
      issueCertificate(ca, {
        commonName: 'kube-apiserver-kubelet-client',
        organizations: ['system:masters'],
        usage: 'client',
        ...leaf,
      }),
      issueCertificate(frontProxyCa, { commonName: 'front-proxy-client', usage: 'client', ...leaf }),
      issueCertificate(etcdCa, { commonName: 'etcd-server', usage: 'both', ...etcdSANs, ...leaf }),
      issueCertificate(etcdCa, { commonName: 'etcd-peer', usage: 'both', ...etcdSANs, ...leaf }),
      issueCertificate(ca, { commonName: 'kubernetes-admin', organizations: ['system:masters'], usage: 'client', ...leaf }),
      issueCertificate(ca, { commonName: 'system:kube-controller-manager', usage: 'client', ...leaf }),
      issueCertificate(ca, { commonName: 'system:kube-scheduler', usage: 'client', ...leaf }),
      issueCertificate(ca, { commonName: 'kube-controller-manager', usage: 'server', ...componentSANs, ...leaf }),
      issueCertificate(ca, { commonName: 'kube-scheduler', usage: 'server', ...componentSANs, ...leaf }),
    ]);

  const p = (name: string): string => join(dir, name);
  const files: ControlPlanePkiFiles = {
    caCert: p('ca.crt'),
    caKey: p('ca.key'),
    apiServerCert: p('apiserver.crt'),
    apiServerKey: p('apiserver.key'),
    apiServerEtcdClientCert: p('apiserver-etcd-client.crt'),
    apiServerEtcdClientKey: p('apiserver-etcd-client.key'),
    apiServerKubeletClientCert: p('apiserver-kubelet-client.crt'),
    apiServerKubeletClientKey: p('apiserver-kubelet-client.key'),
    frontProxyCaCert: p('front-proxy-ca.crt'),
    frontProxyCaKey: p('front-proxy-ca.key'),
    frontProxyClientCert: p('front-proxy-client.crt'),
    frontProxyClientKey: p('front-proxy-client.key'),
    etcdCaCert: p('etcd/ca.crt'),
    etcdCaKey: p('etcd/ca.key'),
    etcdServerCert: p('etcd/server.crt'),
    etcdServerKey: p('etcd/server.key'),
    etcdPeerCert: p('etcd/peer.crt'),
    etcdPeerKey: p('etcd/peer.key'),
    serviceAccountKey: p('sa.key'),
    serviceAccountPub: p('sa.pub'),
    controllerManagerServingCert: p('controller-manager.crt'),
    controllerManagerServingKey: p('controller-manager.key'),
    schedulerServingCert: p('scheduler.crt'),
    schedulerServingKey: p('scheduler.key'),
    adminKubeconfig: p('admin.kubeconfig'),
    controllerManagerKubeconfig: p('controller-manager.kubeconfig'),
    schedulerKubeconfig: p('scheduler.kubeconfig'),
  };

  const kubeconfig = (userName: string, c: IssuedCertificate): string =>
    buildKubeconfig({
      server: apiServerURL,
      caPem: ca.certPem,
      userName,
      clientCertPem: c.certPem,
      clientKeyPem: c.keyPem,
      clusterName,
    });

  const contents: [string, string][] = [
    [files.caCert, ca.certPem],
    [files.caKey, ca.keyPem],
    [files.apiServerCert, apiServer.certPem],
    [files.apiServerKey, apiServer.keyPem],
    [files.apiServerEtcdClientCert, etcdClient.certPem],
    [files.apiServerEtcdClientKey, etcdClient.keyPem],
    [files.apiServerKubeletClientCert, kubeletClient.certPem],
    [files.apiServerKubeletClientKey, kubeletClient.keyPem],
    [files.frontProxyCaCert, frontProxyCa.certPem],
    [files.frontProxyCaKey, frontProxyCa.keyPem],
    [files.frontProxyClientCert, frontProxyClient.certPem],
    [files.frontProxyClientKey, frontProxyClient.keyPem],
    [files.etcdCaCert, etcdCa.certPem],
    [files.etcdCaKey, etcdCa.keyPem],
    [files.etcdServerCert, etcdServer.certPem],
    [files.etcdServerKey, etcdServer.keyPem],
    [files.etcdPeerCert, etcdPeer.certPem],
    [files.etcdPeerKey, etcdPeer.keyPem],
    [files.serviceAccountKey, sa.privateKeyPem],
    [files.serviceAccountPub, sa.publicKeyPem],
    [files.controllerManagerServingCert, kcmServing.certPem],
    [files.controllerManagerServingKey, kcmServing.keyPem],
    [files.schedulerServingCert, schedulerServing.certPem],
    [files.schedulerServingKey, schedulerServing.keyPem],
    [files.adminKubeconfig, kubeconfig('kubernetes-admin', admin)],
    [files.controllerManagerKubeconfig, kubeconfig('system:kube-controller-manager', kcm)],
    [files.schedulerKubeconfig, kubeconfig('system:kube-scheduler', scheduler)],
  ];
  await Promise.all(contents.map(([path, text]) => writeFile(path, text, { mode: 0o600 })));

  const expiries: Record<string, Date> = {
    [files.caCert]: ca.notAfter,
    [files.etcdCaCert]: etcdCa.notAfter,
    [files.frontProxyCaCert]: frontProxyCa.notAfter,
    [files.apiServerCert]: apiServer.notAfter,
    [files.apiServerEtcdClientCert]: etcdClient.notAfter,
    [files.apiServerKubeletClientCert]: kubeletClient.notAfter,
    [files.frontProxyClientCert]: frontProxyClient.notAfter,
    [files.etcdServerCert]: etcdServer.notAfter,
    [files.etcdPeerCert]: etcdPeer.notAfter,
    [files.adminKubeconfig]: admin.notAfter,
    [files.controllerManagerKubeconfig]: kcm.notAfter,
    [files.schedulerKubeconfig]: scheduler.notAfter,
    [files.controllerManagerServingCert]: kcmServing.notAfter,
    [files.schedulerServingCert]: schedulerServing.notAfter,
  };
  const notAfter = new Date(Math.min(...Object.values(expiries).map((d) => d.getTime())));
  return { dir, files, ca, etcdCa, frontProxyCa, admin, apiServerURL, notAfter, expiries };
}
