/** The family's members in memu.db and their accounts on the stack's services. */
export { createFamilyMembersModule } from './family-members-module.ts';
export type { AccountServiceEndpoints, AddMemberResult, FamilyMembersModule, FamilyMembersOptions, MemberWithAccounts } from './family-members-module.ts';
export type { Member } from './members.ts';
export { accountSheet, accountStateWords, appAddresses, canRetry, qrCode, SERVICE_WORDS } from './account-sheet.ts';
export type { SheetMember } from './account-sheet.ts';
