// Xen 4.17 trace record layout and event IDs (platform-facts §1.1–1.8). Pure constants and helpers.

/** Header word of the 12-byte window header xentrace writes before each per-CPU window. */
export const CPU_CHANGE_HEADER = 0x2001f003;
export const CPU_CHANGE_HEADER_BYTES = 12;

export const TRC_LOST_RECORDS = 0x0001f001;
export const TRC_TRACE_WRAP_BUFFER = 0x0001f002;
export const TRC_TRACE_CPU_CHANGE = 0x0001f003;
export const TRC_TRACE_IRQ = 0x0001f004;
/**
 * Synthetic event the merger emits when a lost-records record is processed the second time, at its
 * own TSC (xenalyze handles lost records twice: at first_tsc and at the record's TSC). The hypervisor
 * never writes this ID, and a record carrying it in a trace is counted as unknown.
 */
export const LOST_RECORDS_END = 0x0001f0fe;

export const TRC_SCHED_MIN = 0x00021000;
export const TRC_SCHED_SWITCH = 0x0002800a;
export const TRC_HVM_CR_WRITE = 0x00082009;
export const TRC_HVM_CR_WRITE64 = 0x00082109;

export const RUNSTATE_RUNNING = 0;
export const RUNSTATE_RUNNABLE = 1;
export const RUNSTATE_BLOCKED = 2;
export const RUNSTATE_OFFLINE = 3;

export const DOMID_IDLE = 0x7fff;

/** Top-level classes (bits 16–27 of the event ID) that Xen 4.17 defines: GEN..HW and GUEST. */
const KNOWN_CLASS_BITS = 0x001 | 0x002 | 0x004 | 0x008 | 0x010 | 0x020 | 0x040 | 0x080 | 0x800;

/**
 * Record layout (little-endian 32-bit words), the one place it is spelled out:
 *
 *   word 0      header: bits 0–27 event ID, bits 28–30 number of extra words (0–7), bit 31 TSC follows
 *   words 1–2   TSC, low word first (only when bit 31 is set)
 *   then        the extra (data) words
 */
export const RECORD_HEADER_BYTES = 4;
export const RECORD_TSC_BYTES = 8;
export const MAX_EXTRA_WORDS = 7;
/** The header word's fields: event ID bits, and where the word count and the TSC flag start. */
export const EVENT_ID_MASK = 0x0fffffff;
export const EXTRA_WORDS_SHIFT = 28;
export const TSC_FLAG_SHIFT = 31;

/** The 28-bit event ID of a record header word. */
export function recordEvent(header: number): number {
  return header & EVENT_ID_MASK;
}

/** True if a TSC follows the record header word. */
export function recordHasTsc(header: number): boolean {
  return header >>> TSC_FLAG_SHIFT === 1;
}

/** Number of extra (data) words after the header and TSC. */
export function recordExtraWords(header: number): number {
  return (header >>> EXTRA_WORDS_SHIFT) & MAX_EXTRA_WORDS;
}

/** Record size in bytes from its header word: 4 + 8 if a TSC follows + 4 per extra word. */
export function recordBytes(header: number): number {
  return RECORD_HEADER_BYTES + (recordHasTsc(header) ? RECORD_TSC_BYTES : 0) + 4 * recordExtraWords(header);
}

/**
 * True if the 28-bit event ID belongs to exactly one class Xen defines (xenalyze drops records whose
 * class field has zero or several bits set). In TRC_GEN only the IDs Xen writes are accepted.
 */
export function isKnownEvent(event: number): boolean {
  const cls = (event >>> 16) & 0xfff;
  // Compared for every event, not only in TRC_GEN: the first TRC_GEN record often comes after the
  // caller was optimized, and a comparison never run before would throw that code away.
  const knownGen = event === TRC_LOST_RECORDS || event === TRC_TRACE_WRAP_BUFFER || event === TRC_TRACE_IRQ;
  if (cls === 0 || (cls & (cls - 1)) !== 0 || (cls & KNOWN_CLASS_BITS) === 0) return false;
  return cls !== 0x001 || knownGen;
}
