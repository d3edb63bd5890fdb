import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { NGINX_BINARY } from './nginx.ts';
import { pushTestImage, testCacheDir, type TestRegistry } from './oci-registry.ts';

const run = promisify(execFile);

/** Where the test front door finds the agent: the Docker bridge gateway, as the family stack's nginx does. */
export const TEST_FRONT_DOOR_CONF = `daemon off;
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path /tmp/client_body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;
  # As compose/templates/nginx/site.conf.tmpl: the agent on the host, from extra_hosts.
  upstream memu_agent { server host.docker.internal:8080; }
  server {
    listen 80 default_server;
    location = /healthz { return 200 "ok\\n"; }
    location ^~ /admin/ { proxy_pass http://memu_agent; }
    location / { proxy_pass http://web:8082; }
  }
}
`;

/**
 * The root of a front-door image: Debian's nginx (the host's nginx-light, with the shared
 * libraries ldd names, at their paths) and a configuration that forwards /admin/ to the
 * agent the way the family stack's front door does. A test stand-in for the nginx image
 * the family stack pulls from Docker Hub, which this machine cannot reach.
 */
async function frontDoorRoot(): Promise<string> {
  const root = join(testCacheDir(), 'front-door-rootfs');
  if (existsSync(join(root, 'etc', 'memu-front', 'nginx.conf'))) return root;
  const staging = `${root}.tmp-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  const { stdout } = await run('ldd', [NGINX_BINARY]);
  const libraries = [...stdout.matchAll(/(\/\S+\.so[.\d]*)/g)].map((m) => m[1]!);
  for (const file of [NGINX_BINARY, ...new Set(libraries)]) {
    await mkdir(join(staging, dirname(file)), { recursive: true });
    await copyFile(file, join(staging, file));
  }
  await mkdir(join(staging, 'etc', 'memu-front'), { recursive: true });
  await writeFile(join(staging, 'etc', 'memu-front', 'nginx.conf'), TEST_FRONT_DOOR_CONF);
  // nginx looks up its worker user by name even as root.
  await writeFile(join(staging, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  await writeFile(join(staging, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  await rm(root, { recursive: true, force: true });
  await run('mv', [staging, root]);
  return root;
}

/** Pushes `memu-test/front:1` (amd64: the host's own nginx build) to `registry`. */
export async function pushFrontDoorImage(registry: TestRegistry): Promise<string> {
  await pushTestImage(registry, {
    repo: 'memu-test/front',
    tag: '1',
    platforms: ['linux/amd64'],
    rootLayerDir: await frontDoorRoot(),
    cmd: [NGINX_BINARY, '-e', 'stderr', '-c', '/etc/memu-front/nginx.conf'],
  });
  return `${registry.host}/memu-test/front:1`;
}
