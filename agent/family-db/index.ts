/** memu.db: the family's SQLite database (family, admins, sessions, members and their accounts, audit log, wizard). */
export { familyDbPath, openFamilyDb } from './family-db.ts';
export type { FamilyDb, FamilyDbOptions, RunResult, SqlParams, SqlValue } from './family-db.ts';
export { createFamilyDbModule } from './family-db-module.ts';
export type { FamilyDbModule, FamilyDbModuleOptions } from './family-db-module.ts';
export type { Migration } from './migrations.ts';
