// Lint config: typescript-eslint's recommended type-aware rules over every TS source folder.
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import { layersPlugin } from "./eslint.layers.js";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", ".cache/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      // node:test's test()/describe() return promises the runner itself awaits.
      "@typescript-eslint/no-floating-promises": ["error", { allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["test", "describe", "it", "suite"] }] }],
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true, allowBoolean: true, allowNullish: true }],
    },
  },
  { files: ["**/*.ts"], plugins: { layers: layersPlugin }, rules: { "layers/direction": "error" } },
  { files: ["**/*.js"], ...tseslint.configs.disableTypeChecked },
);
