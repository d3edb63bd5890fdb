import { runCommandOutcome } from '../../shared/process/run-command.ts';
import { BackupError } from './backup-errors.ts';
import type { DatabaseDumpSource } from './backup-run.ts';
import type { DatabaseRestoreTarget } from './box-restore.ts';

/**
 * The dumps of every database in the stack's PostgreSQL, taken inside its running
 * container with `docker exec`: pg_dump's custom format streams into restic with no copy
 * on disk. The superuser's password reaches psql and pg_dump as PGPASSWORD, passed by
 * name (`-e PGPASSWORD`), so docker copies it from its own environment and it never
 * appears on a command line.
 */

export interface PostgresContainer {
  /** The container's name (`<project>-memu_postgres-1`). */
  container: string;
  /** The superuser (`postgres`, as compose/stack.yml sets POSTGRES_USER). */
  user: string;
  /** The superuser's password (the device secrets' postgresPassword). */
  password: () => Promise<string>;
  docker?: string;
}

/** Every database worth keeping: not the templates, not the empty maintenance database. */
export const LIST_DATABASES_SQL = "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname <> 'postgres' ORDER BY 1";

export function dockerExecArgs(pg: Pick<PostgresContainer, 'container' | 'user'>, program: readonly string[]): string[] {
  return ['exec', '-i', '-e', 'PGPASSWORD', pg.container, ...program.slice(0, 1), '-h', '127.0.0.1', '-U', pg.user, ...program.slice(1)];
}

/** The dump sources for every database in the container, each a `docker exec … pg_dump --format=custom`. */
export async function postgresContainerDumps(pg: PostgresContainer): Promise<DatabaseDumpSource[]> {
  const docker = pg.docker ?? 'docker';
  const env = { PGPASSWORD: await pg.password() };
  const listed = await runCommandOutcome(docker, dockerExecArgs(pg, ['psql', '-d', 'postgres', '-AtX', '-c', LIST_DATABASES_SQL]), { env });
  if (listed.code !== 0) {
    throw new BackupError(
      'dump-failed',
      `The family's databases could not be listed in ${pg.container}: ${(listed.startError ?? listed.stderr.trim()) || `exit ${listed.code}`}.`,
      'Check that the database service runs (the overview shows it), then back up again. This run recorded no backup set; earlier backups are intact.',
    );
  }
  return listed.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((name) => ({ name, command: [docker, ...dockerExecArgs(pg, ['pg_dump', '--format=custom', '-d', name])], env }));
}

/**
 * The stack's PostgreSQL as a whole-box restore writes into it: each database dropped (the
 * init made it empty) and created again from its dump by `pg_restore --create`, which
 * brings back its owner, encoding and collation. The password is asked when used: the
 * restored secrets bring the old box's.
 */
export function postgresContainerRestores(pg: PostgresContainer, ready: () => Promise<void>): DatabaseRestoreTarget {
  const docker = pg.docker ?? 'docker';
  return {
    ready,
    async drop(name) {
      const dropped = await runCommandOutcome(docker, dockerExecArgs(pg, ['psql', '-d', 'postgres', '-AtX', '-v', 'ON_ERROR_STOP=1', '-c', `DROP DATABASE IF EXISTS "${name.replaceAll('"', '""')}" WITH (FORCE)`]), {
        env: { PGPASSWORD: await pg.password() },
      });
      if (dropped.code !== 0) throw new Error(`the empty database ${name} could not be removed before the restore: ${(dropped.startError ?? dropped.stderr.trim()) || `exit ${dropped.code}`}`);
    },
    async restoreCommand() {
      return { command: [docker, ...dockerExecArgs(pg, ['pg_restore', '--create', '--exit-on-error', '-d', 'postgres'])], env: { PGPASSWORD: await pg.password() } };
    },
  };
}
