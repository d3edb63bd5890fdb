/** Factory QA: the unit's hardware checks on the bench, a signed report, the console and API views, and the factory-fresh cleanup. */
export { createFactoryQaModule } from './factory-qa-module.ts';
export type { FactoryQaModule, FactoryQaModuleOptions, FactoryQaState, QaUnit } from './factory-qa-module.ts';
export { planFactoryFreshCleanup } from './factory-fresh-plan.ts';
export type { FactoryFreshPlan, FactoryFreshInput } from './factory-fresh-plan.ts';
export { applyFactoryFreshPlan, cleanUpAfterQa, listRootWrittenAtBoot, listTree, recordShippedListing } from './factory-fresh-cleanup.ts';
export { FACTORY_QA_ISSUE_PATH, issueFileConsole } from './qa-console.ts';
export type { QaConsole } from './qa-console.ts';
export { readThisBoot, recordBoot } from './checks/reboot-cycles.ts';
export type { ThisBoot } from './checks/reboot-cycles.ts';
