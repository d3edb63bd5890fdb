/** The family's container stack: compose files + image lock -> running, healthy containers. */
export { createStackModule } from './stack-module.ts';
export { containerName } from './container-spec.ts';
export type { StackModule, StackModuleOptions, StackModuleStatus } from './stack-module.ts';
export type { ReportedServiceStatus } from './service-status.ts';
export type { StackHold } from './plan-context.ts';
