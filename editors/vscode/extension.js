// The archdsl extension: the grammar and language configuration are declared in package.json;
// this starts the language server (`archdsl lsp`, over stdio) for .arch files.
"use strict";
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("archdsl").get("server.command", ["archdsl", "lsp"]);
  client = new LanguageClient(
    "archdsl",
    "archdsl",
    { command, args, transport: 0 /* stdio */ },
    {
      documentSelector: [{ language: "arch" }],
      synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.arch") },
    }
  );
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
