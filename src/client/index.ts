// The typed client of Marina's REST API, for every caller (CLI, web console, benchmarks, tests).
export * from './client.js';
export * from './errors.js';
export * from './ndjson.js';
export * from './resources.js';
export * from './functions.js';
