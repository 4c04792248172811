// The architecture as a lint rule: each top-level folder may import only from the layers below it,
// and one actuator never imports another (what they share lives in actuators/common/).
import { dirname, join, relative, sep } from "node:path";

const root = import.meta.dirname;
const base = ["protocol", "config", "host", "runtime"];
const middle = [...base, "collectors", "pipeline", "actuators"];

/** Folder → the folders it may import from (besides itself). Folders not listed are unchecked. */
export const LAYERS = {
  protocol: [],
  config: ["protocol"],
  host: ["protocol", "config"],
  runtime: ["protocol", "config", "host"],
  collectors: base,
  pipeline: base,
  actuators: base,
  lab: middle,
  cli: [...middle, "lab"],
  bench: [...middle, "lab", "cli"],
};

function parts(file) {
  return relative(root, file).split(sep);
}

const layerRule = {
  meta: { type: "problem", schema: [], messages: { wrongWay: "{{from}} may not import {{to}}: {{why}}" } },
  create(context) {
    const from = parts(context.filename);
    const allowed = LAYERS[from[0]];
    if (!allowed) return {};
    const check = (node, source) => {
      if (typeof source !== "string" || !source.startsWith(".")) return;
      const to = parts(join(dirname(context.filename), source));
      let why = null;
      if (to[0] !== from[0] && !allowed.includes(to[0])) why = `${from[0]}/ sits below or beside ${to[0]}/ (allowed: ${allowed.join(", ") || "none"})`;
      else if (from[0] === "actuators" && to[0] === "actuators" && from[1] !== to[1] && to[1] !== "common" && from.length > 2)
        why = "an actuator shares code through actuators/common/, not another actuator";
      if (why) context.report({ node, messageId: "wrongWay", data: { from: from.join("/"), to: to.join("/"), why } });
    };
    return {
      ImportDeclaration: (n) => check(n.source, n.source.value),
      ExportNamedDeclaration: (n) => n.source && check(n.source, n.source.value),
      ExportAllDeclaration: (n) => check(n.source, n.source.value),
      ImportExpression: (n) => n.source.type === "Literal" && check(n.source, n.source.value),
    };
  },
};

export const layersPlugin = { rules: { direction: layerRule } };
