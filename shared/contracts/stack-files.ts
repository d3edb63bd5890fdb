/**
 * Where an image carries its container stack, shared by the build (which installs it)
 * and the agent (which runs it): the base compose file, optional overrides beside it
 * (e.g. `hailo.yml`, applied only on hardware that has the device), and the image lock.
 */
export const STACK_INSTALL_DIR = '/usr/lib/memu/stack';
export const STACK_BASE_FILE = 'stack.yml';
export const STACK_LOCK_FILE = 'images.lock.json';
/** Overrides applied only when the named device node exists. */
export const DEVICE_OVERRIDES: Record<string, string> = { 'hailo.yml': '/dev/hailo0' };
