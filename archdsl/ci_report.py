"""`archdsl check --format github|junit|sarif`: the check's results for CI services. github:
each diagnostic as a GitHub Actions workflow command (an annotation on its line in the pull
request); junit: the data of `--format json` as a JUnit XML report (one test case per
network, one suite per file: CI services show them as tests); sarif: SARIF 2.1.0 (GitHub code
scanning and other static analysis viewers: one result per error, at its file, line and
column)."""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from . import __version__


def github(err, echo) -> None:
    """Each diagnostic of an ArchError as a workflow command, written with `echo` (to stdout,
    where the runner reads them)."""
    def escape(text: str, prop: bool = False) -> str:
        text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return text.replace(":", "%3A").replace(",", "%2C") if prop else text

    for d in err.diagnostics:
        where = ""
        if d.span is not None:
            where = (f" file={escape(d.span.file, True)},line={d.span.line},col={d.span.column},"
                     f"endLine={d.span.end_line}")
        detail = "".join(f"\n{k}: {v}" for k, v in (("expected", d.expected), ("found", d.found), ("hint", d.hint)) if v)
        echo(f"::error{where},title={escape(f'archdsl {d.code}', True)}::{escape(d.message + detail)}")


def _where(location: str) -> tuple[str, int | None, int | None]:
    """`file:line:col` -> (file, line, col); a bare file name has no line."""
    parts = location.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0], int(parts[1]), int(parts[2])
    return location, None, None


def _failures(result: dict) -> list[tuple[str, str, str]]:
    """(code, location, message) of each problem of one network's result."""
    if "error" in result:
        return [(result["error"], result["location"], result["message"])]
    return [("E501", f["location"], f"expect {f['what']} failed: expected {_value(f['expected'])}, "
                                    f"found {_value(f['found'])}") for f in result.get("failed", [])]


def _value(v: Any) -> str:
    return "x".join(map(str, v)) if isinstance(v, list) else f"{v:,}" if isinstance(v, int) else str(v)


def junit(data: dict[str, Any]) -> str:
    by_file: dict[str, list] = {}
    for r in data["results"]:
        by_file.setdefault(r["file"], []).append(r)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuites name="archdsl check" tests="{len(data["results"])}" failures="{data["failed"]}">']
    for file, results in by_file.items():
        failed = sum(1 for r in results if not r["ok"])
        lines.append(f'  <testsuite name={quoteattr(file)} tests="{len(results)}" failures="{failed}">')
        for r in results:
            name = r["network"] or "(file)"
            head = f'    <testcase classname={quoteattr(file)} name={quoteattr(name)} file={quoteattr(file)}'
            problems = _failures(r)
            if not problems:
                lines.append(head + "/>")
                continue
            lines.append(head + ">")
            for code, location, message in problems:
                lines.append(f"      <failure type={quoteattr(code)} message={quoteattr(f'{location}: {message}')}>"
                             f"{escape(f'{location}: error[{code}]: {message}')}</failure>")
            lines.append("    </testcase>")
        lines.append("  </testsuite>")
    lines.append("</testsuites>")
    return "\n".join(lines)


def sarif(data: dict[str, Any]) -> str:
    results, rules = [], {}
    for r in data["results"]:
        for code, location, message in _failures(r):
            file, line, col = _where(location)
            rules.setdefault(code, {"id": code, "shortDescription": {"text": f"archdsl {code} (docs/errors.md)"}})
            region = {"startLine": line, "startColumn": col} if line is not None else {}
            loc: dict[str, Any] = {"artifactLocation": {"uri": file}}
            if region:
                loc["region"] = region
            results.append({"ruleId": code, "level": "error",
                            "message": {"text": f"{r['network']}: {message}" if r.get("network") else message},
                            "locations": [{"physicalLocation": loc}]})
    doc = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "archdsl", "version": __version__,
                                         "rules": sorted(rules.values(), key=lambda x: x["id"])}},
                     "results": results}]}
    return json.dumps(doc, indent=2)
