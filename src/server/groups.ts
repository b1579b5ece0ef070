import { readFileSync } from 'node:fs';

/** A group name or numeric gid → gid, from /etc/group (Node has no getgrnam). */
export function resolveGroupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined) return Number(gid);
  }
  throw new TypeError(`config.socketGroup: no group named ${group} in /etc/group`);
}
