/** The flasher: `flashImage` for `memu flash` and factory tooling. */
export { flashImage, type FlashOptions, type FlashResult } from './flash-image.ts';
export { listBlockDevices, type BlockDevice } from './block-devices.ts';
export { bmapCandidates } from './compression.ts';
