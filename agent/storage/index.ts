/** The device's disks: the layout (and the profile it names), the data partition's mount, and its first-boot growth. */
export { loadDiskLayout, layoutPartition } from './layout.ts';
export { loadDeviceProfile } from './device-profile.ts';
export { requireMounted } from './mounts.ts';
export { growDataFilesystem, growDataPartition, readDataPartition } from './grow-data.ts';
