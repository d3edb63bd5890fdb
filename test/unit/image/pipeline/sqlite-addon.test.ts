import { describe, expect, it } from 'vitest';
import { checkImageNode, type SqliteAddonKey } from '../../../../image/pipeline/sqlite-addon.ts';

const key: SqliteAddonKey = { arch: 'arm64', source: 'compiled', betterSqlite3: '12.11.1', nodeHeaders: '20.20.2', nodeModuleVersion: '115', compiler: 'aarch64-linux-gnu-g++ (Debian 12.2.0-14) 12.2.0' };

describe("the image's Node and the SQLite addon's headers", () => {
  it("accept any release of the same major version, whatever Debian's revision or epoch", () => {
    expect(() => checkImageNode('20.19.2+dfsg-1+deb13u3', key)).not.toThrow();
    expect(() => checkImageNode('1:20.4.0-1', key)).not.toThrow();
  });

  it('refuse another major version, naming both and the ABI, since the agent could not load its database', () => {
    expect(() => checkImageNode('22.11.0+dfsg-1', key)).toThrow(/the image's nodejs is 22\.11\.0\+dfsg-1, but SQLite's addon .* Node 20\.20\.2 \(ABI 115\), which the image's Node 22 cannot load/);
  });

  it('refuse an image without nodejs', () => {
    expect(() => checkImageNode(undefined, key)).toThrow('the image has no nodejs package, which the agent runs on');
  });
});
