import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { SocketInUseError } from '../errors.js';

/**
 * A socket file left by a crashed monitor refuses connections: remove it. One that accepts belongs
 * to a running monitor: refuse to start (SocketInUseError) rather than steal it.
 */
export async function claimSocketPath(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new SocketInUseError(`${path} exists and is not a socket; refusing to replace it`);
  const answering = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (answering) throw new SocketInUseError(`another monitor is running on ${path}; stop it first or choose another --socket`);
  unlinkSync(path);
}
