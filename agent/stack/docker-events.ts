import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import { stackFilter } from './labels.ts';

/** Container events that change the current state (Docker matches health_status by prefix). */
const STATE_EVENTS = ['create', 'start', 'restart', 'die', 'stop', 'kill', 'oom', 'destroy', 'pause', 'unpause', 'rename', 'update', 'health_status'] as const;

export interface StackEventWatch {
  close(): void;
}

/**
 * Calls `onChange` on every state-changing Docker event of the stack's containers, and
 * subscribes again when the stream ends or cannot be opened (dockerd restarting).
 * Healthchecks alone emit exec_* events every few seconds per service; those must not
 * wake the loop, so only STATE_EVENTS are asked for.
 */
export function watchStackEvents(docker: Dockerode, project: () => Promise<string>, onChange: () => void, log: Logger): StackEventWatch {
  let closed = false;
  let stream: NodeJS.ReadableStream | undefined;
  let retry: NodeJS.Timeout | undefined;

  const destroy = (s: NodeJS.ReadableStream | undefined) => (s as unknown as { destroy?: () => void } | undefined)?.destroy?.();
  const subscribeLater = (ms: number) => {
    if (!closed) retry = setTimeout(() => void subscribe(), ms);
  };

  async function subscribe(): Promise<void> {
    if (closed) return;
    try {
      const opened = await docker.getEvents({ filters: { type: ['container'], event: [...STATE_EVENTS], ...stackFilter(await project()) } });
      if (closed) return destroy(opened);
      stream = opened;
      opened.on('data', onChange);
      const resubscribe = () => {
        if (stream !== opened) return;
        stream = undefined;
        subscribeLater(2000);
      };
      opened.on('error', resubscribe);
      opened.on('end', resubscribe);
    } catch (error) {
      log.warn({ err: error }, 'stack: cannot subscribe to Docker events; relying on the interval');
      subscribeLater(5000);
    }
  }

  void subscribe();
  return {
    close() {
      closed = true;
      clearTimeout(retry);
      const open = stream;
      stream = undefined;
      destroy(open);
    },
  };
}
