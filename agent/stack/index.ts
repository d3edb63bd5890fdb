/** The stack reconciler: compose files + image lock -> running, healthy containers. */
export { createStackReconciler } from './reconciler.ts';
export type { ExecutedStep, ReconcileResult, StackReconciler, StackReconcilerOptions, StackStatus } from './reconciler.ts';
export { composeStackFromSources, loadComposeStack, parseEnvFile } from '../../shared/compose/load.ts';
export type { ComposeSource, ComposeSourceOptions, LoadComposeOptions } from '../../shared/compose/load.ts';
export { ComposeError } from '../../shared/compose/errors.ts';
export { planNextSteps } from './planner.ts';
export type { Plan, PlanContext } from './planner.ts';
export { readCurrentState } from './current-state.ts';
export type { CurrentContainer, CurrentNetwork, CurrentState, CurrentVolume } from './current-state.ts';
export type { DesiredService, DesiredStack } from '../../shared/compose/desired-stack.ts';
export type { Step, StepKind } from './steps.ts';
export type { ServiceStatus } from './service-status.ts';
export { DEFAULT_BACKOFF } from './restart-backoff.ts';
export type { BackoffPolicy, RestartHistory } from './restart-backoff.ts';
export { CONFIG_HASH_LABEL, SERVICE_LABEL, STACK_LABEL } from './labels.ts';
