/**
 * Where the image keeps the agent, written by the build (image/pipeline/agent-bundle.ts)
 * and read by the agent itself and its unit files: one ES module bundle, and beside it
 * the one compiled part, better-sqlite3's addon for the image's architecture.
 */
export const AGENT_INSTALL_DIR = 'usr/lib/memu/agent';
export const AGENT_BUNDLE_NAME = 'memu-agent.mjs';
export const SQLITE_ADDON_NAME = 'better_sqlite3.node';
