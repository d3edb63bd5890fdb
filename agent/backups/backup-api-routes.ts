import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { MaintenanceBusyError } from '../maintenance/index.ts';
import { BackupError } from './backup-errors.ts';
import type { BackupService } from './backup-service-api.ts';
import { publicTarget, TargetInputError, TargetNotFoundError, type TargetInput } from './backup-settings.ts';

/**
 * The machine API of backups (API key; under /admin/api/):
 *
 * GET    /api/backups                                       targets, last success and failure per target, next run, progress
 * POST   /api/backups/run                                   "back up now": 202, or 409 saying what runs instead
 * POST   /api/backups/drill                                 a restore drill of the first target's newest set; waits for it: 200 with the result
 * POST   /api/backups/targets                               adds a target (JSON: kind, label, path | url, accessKeyId…): 201
 * DELETE /api/backups/targets/:id                           removes it (its repository is left as it is): 204
 * GET    /api/backups/targets/:id/sets                      the complete sets, newest first
 * GET    /api/backups/targets/:id/sets/:runId/items?path=   one folder of a set (no path: the backed-up folders)
 * POST   /api/backups/targets/:id/sets/:runId/restore       JSON {path, into}: the item into photos/restored/<into>, never over anything
 */
export function backupApiRoutes(service: Pick<BackupService, 'status' | 'runNow' | 'runDrill' | 'addTarget' | 'removeTarget' | 'repository' | 'restoreItem'>): FastifyPluginAsync {
  const fail = (reply: FastifyReply, err: unknown) => {
    if (err instanceof MaintenanceBusyError) return reply.code(409).send({ error: err.message });
    if (err instanceof TargetNotFoundError) return reply.code(404).send({ error: err.message });
    if (err instanceof TargetInputError) return reply.code(400).send({ error: err.message, problems: err.problems });
    if (err instanceof BackupError) {
      const code = err.reason === 'item-not-found' || err.reason === 'set-not-found' ? 404 : err.reason === 'repository-unreachable' ? 503 : 500;
      return reply.code(code).send({ error: err.message, reason: err.reason });
    }
    return reply.code(400).send({ error: (err as Error).message });
  };

  return async (app) => {
    app.get('/api/backups', async () => service.status());

    app.post('/api/backups/run', async (_request, reply) => {
      try {
        service.runNow('api');
      } catch (err) {
        return fail(reply, err);
      }
      return reply.code(202).send({ started: true });
    });

    app.post('/api/backups/drill', async (_request, reply) => {
      try {
        return await service.runDrill();
      } catch (err) {
        return fail(reply, err);
      }
    });

    app.post<{ Body: TargetInput }>('/api/backups/targets', async (request, reply) => {
      try {
        return reply.code(201).send(publicTarget(await service.addTarget(request.body ?? {})));
      } catch (err) {
        return fail(reply, err);
      }
    });

    app.delete<{ Params: { id: string } }>('/api/backups/targets/:id', async (request, reply) => {
      if (!(await service.removeTarget(request.params.id))) return fail(reply, new TargetNotFoundError(request.params.id));
      return reply.code(204).send();
    });

    app.get<{ Params: { id: string } }>('/api/backups/targets/:id/sets', async (request, reply) => {
      try {
        const sets = await (await service.repository(request.params.id)).listSets();
        return sets
          .filter((s) => s.complete)
          .reverse()
          .map((s) => ({ runId: s.runId, startedAt: s.startedAt, finishedAt: s.finishedAt, bytesProcessed: s.bytesProcessed, files: s.files?.processed }));
      } catch (err) {
        return fail(reply, err);
      }
    });

    app.get<{ Params: { id: string; runId: string }; Querystring: { path?: string } }>('/api/backups/targets/:id/sets/:runId/items', async (request, reply) => {
      try {
        return await (await service.repository(request.params.id)).listItems(request.params.runId, request.query.path ?? '');
      } catch (err) {
        return fail(reply, err);
      }
    });

    app.post<{ Params: { id: string; runId: string }; Body: { path?: unknown; into?: unknown } }>('/api/backups/targets/:id/sets/:runId/restore', async (request, reply) => {
      const { path, into } = request.body ?? {};
      if (typeof path !== 'string' || typeof into !== 'string') return reply.code(400).send({ error: 'give path (a file or folder of the set, like photos/library/2024) and into (a new folder name under photos/restored)' });
      try {
        return await service.restoreItem(request.params.id, request.params.runId, path, into);
      } catch (err) {
        return fail(reply, err);
      }
    });
  };
}
