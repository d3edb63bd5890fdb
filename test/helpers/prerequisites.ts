/**
 * A test's prerequisite (root, loop devices, a block device under /): where it is
 * missing, the test is skipped with the reason shown, except under `CI=true`, where a
 * missing prerequisite fails the run, because a skipped test proves nothing.
 *
 *   const hasLoop = prerequisite('loop devices (losetup -f)', kernelHasLoopDevices());
 *   it.skipIf(!hasLoop)('…', …);
 */
export function prerequisite(what: string, available: boolean): boolean {
  if (available) return true;
  if (process.env.CI === 'true') {
    throw new Error(`prerequisite missing under CI=true: ${what}. CI must provide it (see .ci/run and scripts/setup-host); a skipped test proves nothing`);
  }
  process.stderr.write(`skipping tests that need ${what}: it is missing here (CI=true turns this into a failure)\n`);
  return false;
}

/** True when this process runs as root (owners, device nodes, mounts). */
export const isRoot = process.getuid?.() === 0;

/** Whether Debian's archive answers for `suite` (its InRelease), which builds from the archive need. */
export async function debianArchiveReachable(suite = 'trixie'): Promise<boolean> {
  try {
    const res = await fetch(`http://deb.debian.org/debian/dists/${suite}/InRelease`, { method: 'HEAD', signal: AbortSignal.timeout(10_000) });
    return res.ok;
  } catch {
    return false;
  }
}
