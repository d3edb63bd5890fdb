/** The claim code on the device label: generated here when none was preseeded, stored only as a salted hash. */
export { generateClaimCode, hashClaimCode, verifyClaimCode } from './claim-code.ts';
