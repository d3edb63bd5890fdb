import pino from 'pino';
import { describe, expect, it } from 'vitest';
import {
  BackupError,
  classifyResticFailure,
  DumpFailedError,
  RepositoryDamagedError,
  RepositoryExistsError,
  RepositoryLockedError,
  RepositoryNotFoundError,
  RepositoryUnreachableError,
  ResticFailedError,
  ResticMissingError,
  TargetFullError,
  WrongPasswordError,
} from '../../../../agent/backups/backup-errors.ts';
import { parseResticLine, type ResticJsonCommand } from '../../../../agent/backups/restic-messages.ts';
import { failureOf, humanLine, type ResticAccess } from '../../../../agent/backups/restic-process.ts';
import { lines, recorded } from './restic-fixtures.ts';

/**
 * Each failure restic 0.18.0 really printed (test/fixtures/restic/) becomes its typed
 * error, through the same steps as a live run: stderr's JSON lines parsed into messages
 * and turned into text, then failureOf.
 */
const access: ResticAccess = {
  location: '/media/memu-backup/repo',
  displayLocation: '/media/memu-backup/repo',
  passwordFile: '/var/lib/memu/secrets/backup-repository-password',
  cacheDir: '/var/lib/memu/cache/restic',
  backendEnv: {},
  binary: 'restic',
  unreachableAfterMs: 120_000,
  progressFps: 1,
  log: pino({ level: 'silent' }),
};
const CONSEQUENCE = 'This run recorded no backup set; earlier backups are intact.';

function classifyRecorded(name: string, parse: ResticJsonCommand = 'other', extra: { database?: string; gaveUpRetrying?: { afterMs: number; lastError: string } } = {}): BackupError {
  const run = recorded(name);
  const all = [...lines(run.stdout), ...lines(run.stderr)];
  const messages = all.map((l) => parseResticLine(parse, l)).filter((m) => m !== undefined);
  const stderr = lines(run.stderr).map(humanLine).join('\n');
  return failureOf(access, { parse, args: [], operation: 'backup', consequence: CONSEQUENCE, database: extra.database }, { messages, stderr, code: run.exitCode, signal: null, gaveUpRetrying: extra.gaveUpRetrying });
}

describe('restic failures as typed errors', () => {
  it('a wrong password (exit 12): says the repository was made with another password and that nothing changed', () => {
    const err = classifyRecorded('wrong-password');
    expect(err).toBeInstanceOf(WrongPasswordError);
    expect(err.reason).toBe('wrong-password');
    expect(err.message).toMatch(/does not accept this password.*recovery kit.*Nothing in the repository was changed/s);
    expect(err.detail).toContain('wrong password or no key found');
  });

  it('no repository at the path (exit 10)', () => {
    const err = classifyRecorded('repository-not-found');
    expect(err).toBeInstanceOf(RepositoryNotFoundError);
    expect(err.message).toMatch(/There is no backup repository at .*USB drive is plugged in/);
  });

  it('a repository another process holds (exit 11)', () => {
    const err = classifyRecorded('locked');
    expect(err).toBeInstanceOf(RepositoryLockedError);
    expect(err.detail).toMatch(/already locked by PID \d+/);
  });

  it('a full target (ENOSPC while saving a pack): the run recorded nothing, earlier backups are intact', () => {
    const err = classifyRecorded('target-full', 'backup');
    expect(err).toBeInstanceOf(TargetFullError);
    expect(err.message).toMatch(/is full \(no space left on device\)\. This run recorded no backup set; earlier backups are intact\. Free space/);
  });

  it('a dump command that failed half-way names the database and quotes the dump program', () => {
    const err = classifyRecorded('backup-dump-failed', 'backup', { database: 'immich' });
    expect(err).toBeInstanceOf(DumpFailedError);
    expect(err.message).toMatch(/The dump of database immich failed before it finished\. This run recorded no backup set; earlier backups are intact/);
    expect(err.detail).toContain('pg_dump: error: connection to server lost');
  });

  it('an SFTP server that refuses the connection is unreachable', () => {
    const err = classifyRecorded('sftp-unreachable');
    expect(err).toBeInstanceOf(RepositoryUnreachableError);
    expect(err.message).toMatch(/cannot be reached \(.*(Connection refused|sftp session).*\)/);
  });

  it('a REST server restic kept retrying is unreachable, with the last error it retried and how long', () => {
    const stopped = classifyRecorded('rest-unreachable', 'other', { gaveUpRetrying: { afterMs: 4000, lastError: 'dial tcp 127.0.0.1:1: connect: connection refused' } });
    expect(stopped).toBeInstanceOf(RepositoryUnreachableError);
    expect(stopped.message).toContain('connection refused; gave up after 4 s of retries');
    // Even without the runner's verdict, the retried errors say what happened.
    expect(classifyRecorded('rest-unreachable')).toBeInstanceOf(RepositoryUnreachableError);
  });

  it('init on a path that holds a repository already', () => {
    expect(classifyRecorded('init-exists')).toBeInstanceOf(RepositoryExistsError);
  });

  it("a damaged pack found by check (exit 1, 'repository contains errors')", () => {
    const err = classifyRecorded('check-damaged', 'check');
    expect(err).toBeInstanceOf(RepositoryDamagedError);
    expect(err.message).toMatch(/is damaged.*restic repair packs/s);
  });

  it('unknown exit codes and signals are failures, quoting restic', () => {
    const odd = classifyResticFailure({ operation: 'backup', repository: 'r', consequence: CONSEQUENCE, exitCode: 42, signal: null, stderr: 'something new went wrong\n' });
    expect(odd).toBeInstanceOf(ResticFailedError);
    expect(odd.message).toBe(`restic backup failed (exit 42). ${CONSEQUENCE} restic's message is below; if it repeats, check the target and the repository.`);
    expect(odd.detail).toBe('something new went wrong');
    const killed = classifyResticFailure({ operation: 'check', repository: 'r', consequence: 'The check changes nothing.', exitCode: null, signal: 'SIGKILL', stderr: '' });
    expect(killed.message).toMatch(/^restic check failed \(stopped by SIGKILL\)/);
  });

  it('restic not installed', () => {
    const err = classifyResticFailure({ operation: 'backup', repository: 'r', consequence: CONSEQUENCE, exitCode: null, signal: null, stderr: '', startError: 'spawn restic ENOENT', notInstalled: true });
    expect(err).toBeInstanceOf(ResticMissingError);
    expect(err.message).toMatch(/restic is not installed.*Install Debian's restic package/);
  });

  it('a successful run is never classified by accident: its output has nothing the rules match', () => {
    for (const name of ['backup-files', 'backup-stdin-from-command', 'restore', 'check-ok', 'snapshots']) {
      const err = classifyRecorded(name, name.startsWith('backup') ? 'backup' : name === 'restore' ? 'restore' : name === 'check-ok' ? 'check' : 'other');
      expect(err, name).toBeInstanceOf(ResticFailedError);
    }
  });
});
