import Docker from 'dockerode';
import { waitForDocker } from './bring-up.ts';

/**
 * The IPv4 gateway of Docker's default bridge: the host address a container reaches as
 * `host.docker.internal` (`extra_hosts: host-gateway`), where the front door finds the
 * agent. Waits for Docker's API first; gives up only when `signal` aborts.
 */
export async function dockerBridgeGateway(socketPath: string, signal: AbortSignal): Promise<string> {
  const docker = new Docker({ socketPath });
  for (;;) {
    await waitForDocker(socketPath, Number.POSITIVE_INFINITY, signal);
    const network = (await docker.getNetwork('bridge').inspect().catch(() => undefined)) as { IPAM?: { Config?: { Gateway?: string }[] } } | undefined;
    const gateway = network?.IPAM?.Config?.map((c) => c.Gateway).find((g) => g && /^\d+\.\d+\.\d+\.\d+$/.test(g));
    if (gateway) return gateway;
    signal.throwIfAborted();
    await new Promise((res) => setTimeout(res, 2000));
  }
}
