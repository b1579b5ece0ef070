export * from './messages.js';
export * from './decode.js';
export * from './states.js';
export * from './encode.js';
