/** Factory QA: the unit's hardware checks on the bench, a signed report, and the factory-fresh cleanup plan. */
export { createFactoryQaModule } from './factory-qa-module.ts';
export type { FactoryQaModule, FactoryQaModuleOptions, FactoryQaState } from './factory-qa-module.ts';
export { planFactoryFreshCleanup } from './factory-fresh-plan.ts';
export type { FactoryFreshPlan, FactoryFreshInput } from './factory-fresh-plan.ts';
export { applyFactoryFreshPlan, listRootWrittenAtBoot, listTree } from './factory-fresh-cleanup.ts';
