export * from './compile.js';
export * from './events.js';
export * from './graph.js';
export * from './load.js';
export * from './model.js';
export * from './schema.js';
export * from './servers.js';
export * from './source.js';
