export * from './keys.js';
export * from './certs.js';
export * from './kubeconfig.js';
export * from './controlplane.js';
export * from './sans.js';
