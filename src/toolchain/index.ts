export * from './versions.js';
export * from './resolve.js';
export * from './install.js';
export * from './components.js';
