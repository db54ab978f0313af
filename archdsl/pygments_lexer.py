"""A Pygments lexer for archdsl specs, registered as ``arch`` (entry point ``pygments.lexers``),
so that Sphinx, MkDocs and any other Pygments user highlights ```arch fences and .arch files
(``pygmentize -l arch specs/vgg.arch``).

Only Pygments imports this module (archdsl itself never does). The layer kinds come from the
registry, so a new kind is highlighted without touching this file. Text the lexer does not
know is an Error token: tests/test_highlight.py checks that no spec or docs example has one.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (Comment, Keyword, Name, Number, Operator, Punctuation, String, Whitespace)

from .layers import REGISTRY

#: words with a meaning of their own in a statement (not keywords of the grammar, but flags)
FLAGS = ("noact", "nonorm", "nobias", "ceil", "same", "valid", "exclude_pad", "none", "on", "off", "auto")
KEYWORDS = ("include", "let", "block", "network", "input", "repeat", "as", "if", "else", "aux", "expect",
            "within")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


class ArchLexer(RegexLexer):
    """archdsl's architecture specs (docs/language.md)."""

    name = "archdsl"
    aliases = ["arch", "archdsl"]
    filenames = ["*.arch"]
    mimetypes = ["text/x-archdsl"]

    tokens = {
        "root": [
            (rf"^([\t \f]*)({_IDENT})([\t \f]*)(:)", bygroups(Whitespace, Name.Label, Whitespace, Punctuation)),
            (r"[\t \f]+", Whitespace),
            (r"\\\r?\n", Whitespace),  # a line continuation
            (r"\r?\n", Whitespace),
            (r"#.*?$", Comment.Single),
            (r'"[^"\n]*"', String.Double),
            (rf"\b(block|network)(\s+)({_IDENT})", bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (rf"\b(let)(\s+)({_IDENT})", bygroups(Keyword.Declaration, Whitespace, Name.Variable)),
            (rf"\b(aux)(\s+)({_IDENT})", bygroups(Keyword, Whitespace, Name.Label)),
            (rf"\b(expect)(\s+)({_IDENT})", bygroups(Keyword, Whitespace, Name.Attribute)),
            (rf"(\{{\s*)({_IDENT})(\s*)(:)", bygroups(Punctuation, Name.Label, Whitespace, Punctuation)),
            (rf"(;\s*)({_IDENT})(\s*)(:)", bygroups(Punctuation, Name.Label, Whitespace, Punctuation)),
            (rf"(\|\s*)({_IDENT})(\s*)(:)", bygroups(Operator, Name.Label, Whitespace, Punctuation)),
            (r"\b(act|norm|bias)\b", Keyword.Pseudo),
            (words(KEYWORDS, suffix=r"\b"), Keyword),
            (words(("and", "or", "not"), suffix=r"\b"), Operator.Word),
            (words(("true", "false"), suffix=r"\b"), Keyword.Constant),
            (r"\b(in)(\.)(c|h|w|numel)\b", bygroups(Name.Builtin.Pseudo, Punctuation, Name.Builtin.Pseudo)),
            (words(("min", "max", "int", "floor", "ceil", "round", "abs"), suffix=r"(?=\()"), Name.Builtin),
            (words(sorted(REGISTRY, key=len, reverse=True), prefix=r"\b", suffix=r"\b"), Name.Builtin),
            (words(FLAGS, prefix=r"\b", suffix=r"\b"), Keyword.Pseudo),
            (r"\b[pgd]\d+(,\d+)?\b", Name.Attribute),  # p2, p0,3, g2, d2
            (r"\d+(x\d+)+\b", Number.Integer),  # 3x3, 3x224x224
            (r"(\d+\.\d*|\.\d+)([eE][-+]?\d+)?|\d+[eE][-+]?\d+", Number.Float),
            (r"\d+(_\d+)*", Number.Integer),
            (rf"({_IDENT})(\s*)(=)(?!=)", bygroups(Name.Attribute, Whitespace, Operator)),
            (rf"{_IDENT}(?=\s*\()", Name.Function),
            (r"\bx\b", Operator),
            (_IDENT, Name),
            (r"->|\*\*|//|==|!=|<=|>=|[-+*/%<>=|]", Operator),
            (r"[{}(),;:.]", Punctuation),
        ],
    }
