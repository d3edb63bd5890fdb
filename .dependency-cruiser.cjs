/**
 * Who may import whom (README, "Code map"). Checked by test/unit/architecture/import-rules.test.ts;
 * `npx depcruise hardware image agent shared` prints the same verdict.
 *
 *   shared/    the lowest layer: formats (contracts, the compose subset) and the process runner,
 *              durable files and FAT access both programs use. Imports none of the folders above it.
 *   hardware/  typed profiles. Imports shared/contracts and shared/errors.ts only.
 *   image/     the host program. Imports shared/ and hardware/, never agent/. Its domain code never
 *              imports its CLI (image/cli/).
 *   agent/     the device program. Imports shared/ and hardware/, never image/. One concern's folder
 *              imports another's only through that folder's index.ts.
 */
module.exports = {
  forbidden: [
    { name: 'no-cycles', severity: 'error', comment: 'files that import each other in a loop', from: {}, to: { circular: true } },
    {
      name: 'shared-is-the-lowest-layer',
      severity: 'error',
      comment: 'shared/ is imported by both programs and imports neither',
      from: { path: '^shared/' },
      to: { path: '^(agent|image|hardware|scripts|test)/' },
    },
    {
      name: 'hardware-imports-contracts-only',
      severity: 'error',
      comment: 'profiles are data; they may use the shared formats and error helpers, nothing else of ours',
      from: { path: '^hardware/' },
      to: { path: '^(agent|image|scripts|test)/|^shared/(?!contracts/|errors\.ts$)' },
    },
    {
      name: 'host-never-imports-device',
      severity: 'error',
      comment: 'what both programs need lives in shared/',
      from: { path: '^image/' },
      to: { path: '^agent/' },
    },
    {
      name: 'device-never-imports-host',
      severity: 'error',
      from: { path: '^agent/' },
      to: { path: '^image/' },
    },
    {
      name: 'host-domain-never-imports-cli',
      severity: 'error',
      comment: 'the CLI drives the domain code; errors and exit codes live in image/host/',
      from: { path: '^image/(?!cli/)' },
      to: { path: '^image/cli/' },
    },
    {
      name: 'agent-modules-meet-through-index',
      severity: 'error',
      comment: "an agent concern uses another only through that concern's index.ts",
      from: { path: '^agent/([^/]+)/' },
      to: { path: '^agent/[^/]+/', pathNot: ['^agent/$1/', '^agent/[^/]+/index\\.ts$'] },
    },
    {
      name: 'agent-root-uses-module-faces',
      severity: 'error',
      comment: 'the composition root (agent/*.ts) builds modules from their index.ts',
      from: { path: '^agent/[^/]+\\.ts$' },
      to: { path: '^agent/[^/]+/', pathNot: '^agent/[^/]+/index\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|test|scripts)/' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: ['.ts', '.mjs', '.js'] },
  },
};
