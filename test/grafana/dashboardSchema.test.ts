/**
 * The shipped dashboards checked against Grafana's own dashboard schema: the TypeScript types
 * Grafana generates from its CUE schema and publishes as `@grafana/schema` (Dashboard, Panel,
 * and each panel plugin's Options / FieldConfig).
 *
 * How: each dashboard's JSON text is placed, as an object literal, in a virtual TypeScript file
 * that assigns it to those types, and the TypeScript compiler checks it. An object literal gets
 * excess-property checks, so an unknown or misspelt key fails, as does a wrong type or a missing
 * required field. Grafana's string enums (legend displayMode "list", …) are compared by value
 * (`${Enum}`), which is what the JSON carries. A deliberately broken dashboard must fail.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import ts from "typescript";
import { allPanels, dashboardFiles, repoRoot, type DashboardFile } from "./grafanaFiles.js";

/** Panel plugin → the module of @grafana/schema with its Options and FieldConfig types. */
const PANEL_TYPES: Record<string, { module: string; fieldConfig: boolean }> = {
  timeseries: { module: "timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen", fieldConfig: true },
  stat: { module: "stat/panelcfg/x/StatPanelCfg_types.gen", fieldConfig: false },
  "state-timeline": { module: "statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen", fieldConfig: true },
  table: { module: "table/panelcfg/x/TablePanelCfg_types.gen", fieldConfig: true },
};

const LOOSEN = `
// Grafana's string enums as their values, everything else as declared.
type Loosen<T> = T extends string
  ? \`\${T}\`
  : T extends readonly (infer U)[]
    ? Loosen<U>[]
    : T extends (...args: never[]) => unknown
      ? T
      : T extends object
        ? { [K in keyof T]: Loosen<T[K]> }
        : T;
`;

/** A virtual .ts file that types the dashboard and each panel's options with @grafana/schema. */
function checkSource(d: DashboardFile): string {
  const lines = [
    `import type { AnnotationContainer, AnnotationQuery, Dashboard, DataQuery, Panel } from "@grafana/schema";`,
    // Grafana's CUE #DataQuery is open (datasource plugins add their own fields); the generated
    // interface is closed, so annotation targets are typed as DataQuery plus any other field.
    `type CheckedDashboard = Omit<Dashboard, "annotations"> & { annotations?: Omit<AnnotationContainer, "list"> & { list?: AnnotationQuery<DataQuery & Record<string, unknown>>[] } };`,
  ];
  const used = new Set<string>();
  const body: string[] = [`export const dashboard: Loosen<CheckedDashboard> = ${d.text};`];
  allPanels(d.json).forEach((p, i) => {
    if (p.type === "row") return;
    body.push(`export const panel${i}: Loosen<Panel> = ${JSON.stringify(p)};`);
    const spec = PANEL_TYPES[p.type];
    if (spec === undefined) {
      body.push(`export const unknownPanelType${i}: "a panel type this test knows" = ${JSON.stringify(p.type)};`);
      return;
    }
    const alias = p.type.replace(/[^a-z]/g, "");
    if (!used.has(alias)) {
      used.add(alias);
      lines.push(`import type * as ${alias} from "@grafana/schema/dist/esm/raw/composable/${spec.module}";`);
    }
    body.push(`export const options${i}: Loosen<${alias}.Options> = ${JSON.stringify(p.options ?? {})};`);
    if (spec.fieldConfig) body.push(`export const custom${i}: Loosen<${alias}.FieldConfig> = ${JSON.stringify(p.fieldConfig?.defaults?.custom ?? {})};`);
  });
  return [...lines, LOOSEN, ...body].join("\n");
}

/** Type-checks virtual sources (file name → text) placed in the repository (so node_modules resolves). */
function typeErrors(sources: Map<string, string>): string[] {
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const paths = new Map([...sources].map(([name, text]) => [`${repoRoot}grafana/${name}`, text]));
  const disk = { getSourceFile: host.getSourceFile.bind(host), fileExists: host.fileExists.bind(host), readFile: host.readFile.bind(host) };
  host.getSourceFile = (fileName, languageVersion, ...rest) => {
    const text = paths.get(fileName);
    return text !== undefined ? ts.createSourceFile(fileName, text, languageVersion, true) : disk.getSourceFile(fileName, languageVersion, ...rest);
  };
  host.fileExists = (fileName) => paths.has(fileName) || disk.fileExists(fileName);
  host.readFile = (fileName) => paths.get(fileName) ?? disk.readFile(fileName);
  const program = ts.createProgram([...paths.keys()], options, host);
  return ts.getPreEmitDiagnostics(program).map((diag) => {
    const where = diag.file !== undefined && diag.start !== undefined ? `${diag.file.fileName.slice(repoRoot.length)}:${diag.file.getLineAndCharacterOfPosition(diag.start).line + 1}` : "";
    return `${where} ${ts.flattenDiagnosticMessageText(diag.messageText, "\n")}`;
  });
}

type Mutable = Record<string, unknown> & { panels: { options: { legend: Record<string, unknown> }; gridPos: Record<string, unknown> }[] };

/** Broken copies of a shipped dashboard, each with the error the check must report. */
const BROKEN: [string, (d: Mutable) => void, RegExp][] = [
  ["unknown dashboard key", (d) => (d.refreshInterval = "5s"), /'"?refreshInterval"?' does not exist/],
  ["wrong type", (d) => (d.editable = "yes"), /not assignable to type 'boolean/],
  ["number outside an enum", (d) => (d.graphTooltip = 7), /Type '7' is not assignable/],
  ["string outside an enum", (d) => (d.panels[0]!.options.legend.displayMode = "bubbles"), /Type '"bubbles"' is not assignable/],
  ["misspelt gridPos key", (d) => (d.panels[0]!.gridPos.width = 3), /'"?width"?' does not exist/],
  ["missing required field", (d) => delete d.schemaVersion, /'schemaVersion' is missing/],
];

const files = dashboardFiles();
let errorsOnce: string[] | null = null;
/** One compiler run for the shipped dashboards and the broken copies (it takes seconds). */
function allErrors(): string[] {
  if (errorsOnce !== null) return errorsOnce;
  const sources = new Map(files.map((f) => [`${f.file.replace(/\.json$/, "")}.schema-check.ts`, checkSource(f)]));
  for (const [i, [, mutate]] of BROKEN.entries()) {
    const broken = structuredClone(files[0]!.json) as unknown as Mutable;
    mutate(broken);
    const text = JSON.stringify(broken, null, 2);
    sources.set(`broken${i}.schema-check.ts`, checkSource({ file: `broken${i}.json`, text, json: JSON.parse(text) as DashboardFile["json"] }));
  }
  errorsOnce = typeErrors(sources);
  return errorsOnce;
}

void test("every shipped dashboard type-checks against @grafana/schema (Dashboard, Panel, panel options)", () => {
  assert.deepEqual(files.map((f) => f.file), ["offloadcage-agent-health.json", "offloadcage-cage-prometheus.json", "offloadcage-memory.json", "offloadcage-overview.json"]);
  const errors = allErrors().filter((e) => !e.startsWith("grafana/broken"));
  assert.deepEqual(errors, [], errors.join("\n"));
  for (const f of files) {
    assert.equal(typeof f.json.uid, "string");
    assert.ok(allPanels(f.json).length >= 3, `${f.file}: panels`);
    const ids = allPanels(f.json).map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, `${f.file}: panel ids are unique`);
  }
});

void test("the check fails on a broken dashboard: unknown key, wrong type, enum values, misspelt key, missing field", () => {
  const errors = allErrors();
  for (const [i, [what, , expected]] of BROKEN.entries()) {
    const mine = errors.filter((e) => e.startsWith(`grafana/broken${i}.schema-check.ts:`)).join("\n");
    assert.match(mine, expected, `${what}: got\n${mine}`);
  }
});
