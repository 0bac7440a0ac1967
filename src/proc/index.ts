export * from './spawn.js';
export * from './net.js';
export * from './http.js';
export * from './cmdline.js';
