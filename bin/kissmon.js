#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=2
// Built by `npm install` (prepare → tsc); see README. The shebang's settings are defined in
// src/launch-settings.ts (why: docs/OPERATIONS.md, "Launch settings").
import '../dist/src/cli.js';
