#!/usr/bin/env node
// Built by `npm install` (prepare → tsc); see README.
import '../dist/src/cli.js';
