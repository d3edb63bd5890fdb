import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A real nginx (Debian's nginx-light) running in the foreground from a temporary
 * prefix, with the rendered front-door site included the way the nginx image includes
 * /etc/nginx/conf.d/default.conf: inside http {}.
 */
export const NGINX_BINARY = '/usr/sbin/nginx';

export interface NginxInstance {
  prefix: string;
  /** Where nginx would spool request bodies; must stay empty when uploads stream. */
  clientBodyTempDir: string;
  proxyTempDir: string;
  stop(): Promise<void>;
  errorLog(): Promise<string>;
}

async function writeMainConfig(siteConf: string): Promise<{ prefix: string; confPath: string }> {
  const prefix = await mkdtemp(join(tmpdir(), 'memu-nginx-'));
  // Workers run as "nobody" when the master is root: they must reach the temp dirs.
  await chmod(prefix, 0o755);
  await writeFile(join(prefix, 'site.conf'), siteConf);
  const confPath = join(prefix, 'nginx.conf');
  await writeFile(
    confPath,
    [
      'daemon off;',
      'worker_processes 1;',
      `pid ${prefix}/nginx.pid;`,
      `error_log ${prefix}/error.log info;`,
      'events { worker_connections 256; }',
      'http {',
      '  include /etc/nginx/mime.types;',
      '  default_type application/octet-stream;',
      `  access_log ${prefix}/access.log;`,
      `  client_body_temp_path ${prefix}/client_body_temp;`,
      `  proxy_temp_path ${prefix}/proxy_temp;`,
      `  fastcgi_temp_path ${prefix}/fastcgi_temp;`,
      `  uwsgi_temp_path ${prefix}/uwsgi_temp;`,
      `  scgi_temp_path ${prefix}/scgi_temp;`,
      `  include ${prefix}/site.conf;`,
      '}',
      '',
    ].join('\n'),
  );
  return { prefix, confPath };
}

/** `nginx -t` on the site config; returns nginx's output, throws when the test fails. */
export async function nginxConfigTest(siteConf: string): Promise<string> {
  const { prefix, confPath } = await writeMainConfig(siteConf);
  try {
    const result = spawnSync(NGINX_BINARY, ['-t', '-p', prefix, '-c', confPath], { encoding: 'utf8' });
    const output = `${result.stdout}${result.stderr}`;
    if (result.status !== 0) throw new Error(`nginx -t failed:\n${output}`);
    return output;
  } finally {
    await rm(prefix, { recursive: true, force: true });
  }
}

function waitForPort(port: number, host: string, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`nginx exited with ${child.exitCode}`));
      const socket = connect(port, host);
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`nginx did not listen on ${host}:${port}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

export async function startNginx(siteConf: string, listen: { host: string; port: number }): Promise<NginxInstance> {
  const { prefix, confPath } = await writeMainConfig(siteConf);
  const child = spawn(NGINX_BINARY, ['-p', prefix, '-c', confPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    await waitForPort(listen.port, listen.host, child);
  } catch (err) {
    child.kill('SIGKILL');
    const log = await readFile(join(prefix, 'error.log'), 'utf8').catch(() => '');
    await rm(prefix, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n${stderr}\n${log}`);
  }
  return {
    prefix,
    clientBodyTempDir: join(prefix, 'client_body_temp'),
    proxyTempDir: join(prefix, 'proxy_temp'),
    errorLog: () => readFile(join(prefix, 'error.log'), 'utf8').catch(() => ''),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGQUIT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      await rm(prefix, { recursive: true, force: true });
    },
  };
}
