import type { Logger } from 'pino';
import type { AgentModule } from '../module.ts';
import { familyDbPath, openFamilyDb, type FamilyDb, type FamilyDbOptions } from './family-db.ts';

export interface FamilyDbModuleOptions {
  /** Mount point of the data partition; memu.db is `agent/memu.db` under it. */
  dataDir: string;
  faultInjection?: FamilyDbOptions['faultInjection'];
}

export interface FamilyDbModule extends AgentModule {
  /** The open database, from start() until stop(). */
  readonly db: FamilyDb;
  /**
   * Closes memu.db, lets `write` put another file at its path (whole, or not at all), and
   * opens (and migrates) what is there then: also when `write` fails, so the agent goes on
   * with the database it had. Requests in between are told memu.db is not open.
   */
  replace<T>(write: (path: string) => Promise<T>): Promise<T>;
}

/** memu.db as an agent module: start() opens and migrates it, stop() closes it. */
export function createFamilyDbModule(opts: FamilyDbModuleOptions, log: Logger): FamilyDbModule {
  let db: FamilyDb | undefined;
  let failure: string | undefined;
  const path = familyDbPath(opts.dataDir);
  const open = () => {
    failure = undefined;
    // A box whose data partition is missing or damaged still starts, to report why;
    // what needs memu.db then answers with this reason.
    try {
      db = openFamilyDb(path, log, { faultInjection: opts.faultInjection });
    } catch (err) {
      failure = (err as Error).message;
      log.error({ err }, 'memu.db cannot be opened: the wizard and dashboard are unavailable');
    }
  };
  return {
    name: 'family-db',
    async start() {
      open();
    },
    async replace(write) {
      db?.close();
      db = undefined;
      try {
        return await write(path);
      } finally {
        open();
      }
    },
    async stop() {
      db?.close();
      db = undefined;
    },
    get db(): FamilyDb {
      if (!db) throw new Error(failure ? `memu.db cannot be opened: ${failure}` : 'memu.db is not open: the family-db module has not started, or has stopped');
      return db;
    },
  };
}
