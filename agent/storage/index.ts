/** The device's disks: the layout, the data partition's mount, and its first-boot growth. */
export { loadDiskLayout, layoutPartition } from './layout.ts';
export { requireMounted } from './mounts.ts';
export { growDataFilesystem, growDataPartition, readDataPartition } from './grow-data.ts';
