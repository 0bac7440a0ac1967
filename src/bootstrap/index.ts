// Provider-neutral computation of what a cluster and each of its machines need.
export * from './clusterPki.js';
export * from './machine.js';
