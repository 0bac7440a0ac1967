export * from './spawn.js';
export * from './net.js';
export * from './http.js';
