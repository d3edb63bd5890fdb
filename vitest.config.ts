import { defineConfig } from 'vitest/config';

// Three suites: unit (pure, fast), integration (real dockerd, registry, filesystems,
// nginx, postgres) and e2e (QEMU boots). Integration and e2e files share dockerd, ports
// and the build cache, so files run one at a time by default; `npm run test:unit` runs
// the unit files, which share nothing, in parallel (package.json).
export default defineConfig({
  test: {
    fileParallelism: false,
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 20_000 } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 30 * 60_000,
          hookTimeout: 40 * 60_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 30 * 60_000,
          hookTimeout: 40 * 60_000,
        },
      },
    ],
  },
});
