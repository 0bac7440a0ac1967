#!/usr/bin/env node
// Thin launcher so `npm link`/`npx marina` work; the CLI itself is compiled TypeScript.
import '../dist/src/cli/main.js';
