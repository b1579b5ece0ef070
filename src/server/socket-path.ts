import { chmodSync, chownSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { SocketInUseError } from '../errors.js';
import { resolveGroupId } from './groups.js';

export interface SocketAccess {
  /** File mode, e.g. 0o660. */
  mode: number;
  /** Group name or gid owning the file, or null for the process's group. */
  group: string | null;
}

/**
 * Claims `path` (see claimSocketPath) and binds `server` there with the given mode and group.
 * bind() happens synchronously inside listen(): the umask set around it makes the file appear
 * with its final mode, so there is no moment in which another user could connect.
 */
export async function listenOnSocketPath(
  server: net.Server,
  path: string,
  access: SocketAccess,
  backlog = 511,
): Promise<void> {
  await claimSocketPath(path);
  const listening = new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const umask = process.umask(~access.mode & 0o777);
  try {
    server.listen({ path, backlog });
  } finally {
    process.umask(umask);
  }
  await listening;
  chmodSync(path, access.mode);
  if (access.group !== null) chownSync(path, process.getuid?.() ?? -1, resolveGroupId(access.group));
}

/**
 * A socket file left by a crashed monitor refuses connections (ECONNREFUSED): remove it. Anything
 * else means it may be live and is never taken over (SocketInUseError): a socket that accepts
 * belongs to a running monitor; EAGAIN is a live monitor whose listen backlog is full (paused or
 * overloaded); EACCES is someone else's socket that we may not even test.
 */
export async function claimSocketPath(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket())
    throw new SocketInUseError(`${path} exists and is not a socket; refusing to replace it`);
  const failure = await new Promise<string | null>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(null);
    });
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
  if (failure === null)
    throw new SocketInUseError(`another monitor is running on ${path}; stop it first or choose another --socket`);
  if (failure === 'ENOENT') return; // removed meanwhile
  if (failure !== 'ECONNREFUSED')
    throw new SocketInUseError(
      `${path} exists and a test connect failed with ${failure}: it may belong to a running monitor; not replacing it`,
    );
  unlinkSync(path);
}
