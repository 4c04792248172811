// Reads the per-vCPU "running" lines of `xenalyze --summary` output (used to check our numbers). No I/O.
//
// Each domain block starts with `|-- Domain N --|`, each vCPU block with `-- vK --`, and the vCPU's
// runstate lines read `   running:  COUNT  S.SSs  AVG-CYCLES {p5|p50|p95}`. The seconds are printed
// with only two decimals, so cycles are recovered as COUNT * AVG (AVG is total/COUNT, truncated), which
// is exact to within COUNT cycles.

export interface XenalyzeVcpu {
  vcpu: number;
  runCycles: number;
  runCount: number;
}

export interface XenalyzeDomain {
  domain: number;
  runCycles: number;
  vcpus: XenalyzeVcpu[];
}

export interface XenalyzeSummary {
  totalSeconds: number | undefined;
  domains: XenalyzeDomain[];
}

export function parseXenalyzeSummary(text: string): XenalyzeSummary {
  const domains: XenalyzeDomain[] = [];
  let domain: XenalyzeDomain | undefined;
  let vcpu: XenalyzeVcpu | undefined;
  let totalSeconds: number | undefined;
  for (const line of text.split("\n")) {
    const total = /^Total time: ([\d.]+) seconds/.exec(line);
    if (total !== null) {
      totalSeconds = Number(total[1]);
      continue;
    }
    const dom = /^\|-- Domain (\d+) --\|/.exec(line);
    if (dom !== null) {
      domain = { domain: Number(dom[1]), runCycles: 0, vcpus: [] };
      domains.push(domain);
      vcpu = undefined;
      continue;
    }
    const vc = /^-- v(\d+) --/.exec(line);
    if (vc !== null && domain !== undefined) {
      vcpu = { vcpu: Number(vc[1]), runCycles: 0, runCount: 0 };
      domain.vcpus.push(vcpu);
      continue;
    }
    const running = /^\s+running:\s+(\d+)\s+[\d.]+s\s+(\d+)\s/.exec(line);
    if (running !== null && vcpu !== undefined && domain !== undefined && vcpu.runCount === 0) {
      vcpu.runCount = Number(running[1]);
      vcpu.runCycles = vcpu.runCount * Number(running[2]);
      domain.runCycles += vcpu.runCycles;
    }
  }
  return { totalSeconds, domains };
}
