// One implementation for host and device: the device owns it because it is the side
// that must survive power cuts; the host reuses it for artifacts and keys.
export { writeFileAtomic, fsyncDirectory, temporaryNameFor } from '../shared/files/durable-files.ts';
