// Reads the table `xl list` prints (platform-facts §2.5). Pure.
//
//   Name                                        ID   Mem VCPUs	State	Time(s)
//   Domain-0                                     0   768     2     r-----       5.6
//
// The header has TABs, the rows use spaces; a name is printed with %-40s and may be longer.

export interface XlListDomain {
  name: string;
  domain: number;
  memMiB: number;
  vcpus: number;
  state: string;
  cpuSeconds: number;
}

const ROW = /^(.*?)\s+(\d+)\s+(\d+)\s+(\d+)\s+([-a-zA-Z]{6})\s+(\d+(?:\.\d+)?)\s*$/;

/** Domain rows of `xl list` output; the header and lines that are not rows are skipped. */
export function parseXlList(text: string): XlListDomain[] {
  const rows: XlListDomain[] = [];
  for (const line of text.split("\n")) {
    if (/^Name\s+ID\s/.test(line)) continue;
    const m = ROW.exec(line);
    if (m === null) continue;
    const name = (m[1] as string).trim();
    const domain = Number(m[2]);
    if (name === "" || domain > 65535) continue;
    rows.push({ name, domain, memMiB: Number(m[3]), vcpus: Number(m[4]), state: m[5] as string, cpuSeconds: Number(m[6]) });
  }
  return rows;
}

/** Domain ID → name from `xl list` output. */
export function domainNamesFromXlList(text: string): Map<number, string> {
  return new Map(parseXlList(text).map((d) => [d.domain, d.name]));
}
