import { createConnection, type Socket } from 'node:net';

/**
 * Runs a command inside a booted VM through the QEMU guest agent (qemu-ga, Debian's
 * qemu-guest-agent package, in test images only) on its virtio-serial channel: the way
 * end-to-end tests act inside the box (stop a process, fill a disk, hang the kernel)
 * without giving test images a network login.
 *
 * Protocol (QEMU's qga-ref): one JSON command per line; `guest-sync-delimited` first, so a
 * reply left over from an earlier connection is skipped; `guest-exec` starts the program
 * and returns its pid; `guest-exec-status` is polled until it has exited, with its output
 * in base64.
 */
export interface GuestCommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Arguments the virtual machine needs for the guest agent's channel, on `socketPath`. */
export function guestAgentQemuArgs(socketPath: string): string[] {
  return [
    '-chardev', `socket,path=${socketPath},server=on,wait=off,id=qga0`,
    '-device', 'virtio-serial-pci',
    '-device', 'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
  ];
}

export interface GuestAgent {
  /** Runs a program in the guest and waits for it to exit, with its output. */
  exec(argv: readonly string[], opts?: { timeoutMs?: number; input?: string }): Promise<GuestCommandResult>;
  /** Runs `script` with /bin/sh -c inside the guest; throws, with its output, unless it exits 0. */
  shell(script: string, opts?: { timeoutMs?: number }): Promise<string>;
  close(): void;
}

/**
 * One connection to the guest agent, kept for the VM's life and used by one command at a
 * time: qemu-ga on virtio-serial loses what a new connection sends right after the
 * previous one hung up (measured: about half the commands sent that way got no answer).
 * A command that gets no answer drops the connection; the next one opens a new one and
 * re-synchronises.
 */
export function createGuestAgent(socketPath: string): GuestAgent {
  let channel: Promise<Channel> | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  const connected = () => (channel ??= openChannel(socketPath).catch((err: unknown) => {
    channel = undefined;
    throw err;
  }));
  const run = async (argv: readonly string[], opts: { timeoutMs?: number; input?: string }): Promise<GuestCommandResult> => {
    const [path, ...args] = argv;
    if (!path) throw new Error('a guest command needs a program to run');
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    const c = await connected();
    try {
      const execArgs: Record<string, unknown> = { path, arg: args, 'capture-output': true };
      if (opts.input !== undefined) execArgs['input-data'] = Buffer.from(opts.input).toString('base64');
      const { pid } = (await c.call('guest-exec', execArgs, deadline)) as { pid: number };
      for (;;) {
        const status = (await c.call('guest-exec-status', { pid }, deadline)) as {
          exited: boolean;
          exitcode?: number;
          signal?: number;
          'out-data'?: string;
          'err-data'?: string;
        };
        if (status.exited) {
          return {
            exitCode: status.exitcode ?? 128 + (status.signal ?? 0),
            stdout: Buffer.from(status['out-data'] ?? '', 'base64').toString(),
            stderr: Buffer.from(status['err-data'] ?? '', 'base64').toString(),
          };
        }
        if (Date.now() > deadline) throw new Error(`guest command ${argv.join(' ')} still running after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } catch (err) {
      c.close();
      channel = undefined;
      throw err;
    }
  };
  const exec: GuestAgent['exec'] = (argv, opts = {}) => {
    const next = queue.then(() => run(argv, opts));
    queue = next.catch(() => undefined);
    return next;
  };
  return {
    exec,
    async shell(script, opts) {
      const r = await exec(['/bin/sh', '-c', script], opts);
      if (r.exitCode !== 0) throw new Error(`in the guest, "${script}" exited ${r.exitCode}:\n${r.stdout}${r.stderr}`);
      return r.stdout;
    },
    close() {
      void channel?.then((c) => c.close(), () => undefined);
      channel = undefined;
    },
  };
}

/** Waits until the guest agent answers (the guest has booted far enough to start it). */
export async function waitForGuestAgent(agent: GuestAgent, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      await agent.exec(['/bin/true'], { timeoutMs: 10_000 });
      return;
    } catch (err) {
      last = (err as Error).message;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  throw new Error(`the QEMU guest agent did not answer within ${Math.round(timeoutMs / 1000)} s (last: ${last}); is qemu-guest-agent in the image?`);
}

interface Channel {
  call(command: string, args: Record<string, unknown>, deadline: number): Promise<unknown>;
  close(): void;
}

async function openChannel(socketPath: string, syncTimeoutMs = 10_000): Promise<Channel> {
  const sock: Socket = createConnection(socketPath);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  let buffer = '';
  const waiting: ((line: string) => void)[] = [];
  sock.on('data', (d) => {
    buffer += d.toString('latin1');
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      // guest-sync-delimited's reply is preceded by 0xFF, which resets the guest's parser.
      const line = buffer.slice(0, nl).replace(/^\xff+/, '').trim();
      buffer = buffer.slice(nl + 1);
      if (line) waiting.shift()?.(line);
    }
  });
  const readReply = (deadline: number) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the QEMU guest agent did not answer')), Math.max(0, deadline - Date.now()));
      waiting.push((line) => {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(line) as Record<string, unknown>);
        } catch {
          reject(new Error(`the QEMU guest agent answered something that is not JSON: ${line.slice(0, 200)}`));
        }
      });
    });
  try {
    const id = Math.floor(Math.random() * 2 ** 31);
    const syncDeadline = Date.now() + syncTimeoutMs;
    sock.write(`\xff${JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } })}\n`, 'latin1');
    // Replies to commands of an earlier, abandoned connection may still arrive first.
    for (;;) {
      const reply = await readReply(syncDeadline);
      if (reply.return === id) break;
    }
  } catch (err) {
    sock.destroy();
    throw err;
  }
  return {
    async call(command, args, deadline) {
      sock.write(`${JSON.stringify({ execute: command, arguments: args })}\n`);
      const reply = await readReply(deadline);
      if ('error' in reply) throw new Error(`guest agent ${command}: ${JSON.stringify(reply.error)}`);
      return reply.return;
    },
    close: () => sock.destroy(),
  };
}
