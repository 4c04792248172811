import { test } from "node:test";
import assert from "node:assert/strict";
import { renderSvgPlot } from "../../../lab/common/svgPlot.js";

void test("renders one path per series, with gaps for null and the labels escaped", () => {
  const svg = renderSvgPlot({
    title: "cage <web>",
    xLabel: "t (s)",
    yLabel: "% of one CPU",
    x: [0, 1, 2, 3],
    series: [
      { label: "VM", values: [10, 20, null, 40], color: "#1f77b4" },
      { label: "cap", values: [50, 50, 50, 50], color: "black", dashed: true },
    ],
  });
  assert.match(svg, /^<svg /);
  assert.ok(svg.includes("cage &lt;web&gt;"));
  const paths = [...svg.matchAll(/<path d="([^"]*)"/g)].map((m) => m[1] ?? "");
  assert.equal(paths.length, 2);
  assert.equal((paths[0]?.match(/M/g) ?? []).length, 2, "the null value splits the VM line");
  assert.equal((paths[1]?.match(/L/g) ?? []).length, 3);
  assert.ok(svg.includes('stroke-dasharray="6 4"'));
});

void test("rejects a series whose length differs from x", () => {
  assert.throws(() => renderSvgPlot({ title: "t", xLabel: "x", yLabel: "y", x: [0, 1], series: [{ label: "a", values: [1], color: "red" }] }), /series a has 1 values for 2 x values/);
});
