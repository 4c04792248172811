/**
 * What `virsh` prints, parsed strictly and without I/O (host/libvirt/libvirtDomain.ts runs it).
 *
 * `virsh event --loop --all` lines for the lifecycle of a domain (libvirt 9.0):
 *   event 'lifecycle' for domain 'web1': Started Booted
 *   event 'lifecycle' for domain 'web1': Stopped Destroyed
 *   event 'lifecycle' for domain 'web1': Undefined Removed
 * Other events ('reboot', 'balloon-change', ...) have the same head and are returned as such.
 */

export interface VirshEvent {
  /** 'lifecycle', 'reboot', 'balloon-change', ... */
  event: string;
  domain: string;
  /** The rest of the line after "': " (for lifecycle: "<Event> <Detail>"), "" when none. */
  detail: string;
}

const EVENT_LINE = /^event '([a-z0-9-]+)' for domain '(.*?)'(?:: ?(.*))?$/;

/** One line of `virsh event` output; null for anything else (blank lines, "events received: N"). */
export function parseVirshEventLine(line: string): VirshEvent | null {
  const m = EVENT_LINE.exec(line.trim());
  if (m === null) return null;
  return { event: m[1] as string, domain: m[2] as string, detail: (m[3] ?? "").trim() };
}

/** libvirt's domain states as `virsh domstate` prints them. */
export const DOMAIN_STATES = ["running", "idle", "paused", "in shutdown", "shut off", "crashed", "pmsuspended"] as const;
export type DomainState = (typeof DOMAIN_STATES)[number];

/** `virsh domstate DOM` output → the state; throws naming the text when it is none of libvirt's. */
export function parseDomState(text: string, command: string): DomainState {
  const s = text.trim();
  const found = DOMAIN_STATES.find((d) => d === s);
  if (found === undefined) throw new Error(`${command}: not a libvirt domain state: ${JSON.stringify(s.slice(0, 80))}`);
  return found;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** `virsh domuuid DOM` output → the UUID (lower case). */
export function parseDomUuid(text: string, command: string): string {
  const s = text.trim().toLowerCase();
  if (!UUID.test(s)) throw new Error(`${command}: not a UUID: ${JSON.stringify(s.slice(0, 80))}`);
  return s;
}

/** A domain as the config names it: a libvirt name or a UUID, never an option. */
export const LIBVIRT_DOMAIN_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._:+-]{0,127}$/;

export function checkLibvirtDomain(domain: string): string {
  if (!LIBVIRT_DOMAIN_PATTERN.test(domain)) throw new RangeError(`libvirt domain ${JSON.stringify(domain)}: must match ${LIBVIRT_DOMAIN_PATTERN.source}`);
  return domain;
}
