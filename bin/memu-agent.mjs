#!/usr/bin/env node
// Development entry; on a device the agent runs from its single-file bundle.
import { register } from 'tsx/esm/api';
register();
await import('../agent/main.ts');
