// The controller runtime: work queue, controller, manager, reconcile helper, conditions, metrics.
export * from './workqueue.js';
export * from './controller.js';
export * from './reconcile.js';
export * from './conditions.js';
export * from './metrics.js';
export * from './manager.js';
