// Tokenise .arch files with the extension's grammar, through vscode-textmate and
// vscode-oniguruma (the engine VS Code itself uses). Prints, as JSON, one list per file of
// [line, startColumn, text, scopes] for every token, and whether the grammar ended each file
// in its initial state (no rule left open). tests/test_highlight.py runs this.
//   node test/tokenize.js FILE...        (from editors/vscode, after `npm ci`)
"use strict";
const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const root = path.join(__dirname, "..");
const wasm = fs.readFileSync(path.join(root, "node_modules", "vscode-oniguruma", "release", "onig.wasm")).buffer;
const grammars = {
  "source.arch": path.join(root, "syntaxes", "arch.tmLanguage.json"),
  "markdown.arch.codeblock": path.join(root, "syntaxes", "arch.markdown.tmLanguage.json"),
};

async function main() {
  await oniguruma.loadWASM(wasm);
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (sources) => new oniguruma.OnigScanner(sources),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scopeName) => {
      const file = grammars[scopeName];
      return file ? vsctm.parseRawGrammar(fs.readFileSync(file, "utf8"), file) : null;
    },
  });
  const grammar = await registry.loadGrammar("source.arch");
  const out = {};
  for (const file of process.argv.slice(2)) {
    const lines = fs.readFileSync(file, "utf8").split(/\r?\n/);
    let stack = vsctm.INITIAL;
    const tokens = [];
    lines.forEach((line, i) => {
      const result = grammar.tokenizeLine(line, stack);
      for (const t of result.tokens) {
        tokens.push([i + 1, t.startIndex + 1, line.substring(t.startIndex, t.endIndex), t.scopes]);
      }
      stack = result.ruleStack;
    });
    out[file] = { tokens, closed: stack.depth === 1 };
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
