"""A reader of the GBNF subset our grammars use, written from llama.cpp's grammars/README.md.

It turns a grammar without recursion into a Python regex (rules inlined), so a test can ask
"does this grammar accept this string?" without a server. Supported: ``name ::= body`` rules
(a body may continue on the next line after a trailing ``|``), ``"literals"`` with ``\\`` escapes,
``[classes]`` (ranges, ``^``, ``\\n \\r \\t \\[ \\] \\\\`` escapes), rule references, ``|``, ``( )``
and the ``* + ?`` repetitions. The real engine's parser is exercised by the llama.cpp test.
"""

from __future__ import annotations

import re

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "[": "[", "]": "]"}


def _rules(grammar: str) -> dict[str, str]:
    rules: dict[str, str] = {}
    name = ""
    for line in grammar.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            # llama.cpp reads past a line break only after a "|" (or inside parentheses)
            if not rules.get(name, "").endswith("|"):
                raise ValueError(f"a line break ends rule {name!r} here: {line!r}")
            rules[name] += " " + line.strip()
            continue
        name, separator, body = line.partition("::=")
        if not separator:
            raise ValueError(f"not a rule: {line!r}")
        name = name.strip()
        rules[name] = body.strip()
    return rules


def _char(body: str, at: int) -> tuple[str, int]:
    if body[at] == "\\":
        return _ESCAPES[body[at + 1]], at + 2
    return body[at], at + 1


def _translate(name: str, rules: dict[str, str], seen: tuple[str, ...]) -> str:
    if name in seen:
        raise ValueError(f"recursive rule {name!r} is outside this reader's subset")
    body = rules[name]
    out: list[str] = []
    at = 0
    while at < len(body):
        c = body[at]
        if c.isspace():
            at += 1
        elif c == '"':
            at += 1
            literal = ""
            while body[at] != '"':
                character, at = _char(body, at)
                literal += character
            at += 1
            out.append("(?:" + re.escape(literal) + ")")
        elif c == "[":
            at += 1
            negated = body[at] == "^"
            at += 1 if negated else 0
            items = ""
            while body[at] != "]":
                low, at = _char(body, at)
                if body[at] == "-" and body[at + 1] != "]":
                    high, at = _char(body, at + 1)
                    items += re.escape(low) + "-" + re.escape(high)
                else:
                    items += re.escape(low)
            at += 1
            out.append("[" + ("^" if negated else "") + items + "]")
        elif c in "|()*+?":
            out.append(c)
            at += 1
        elif c.isalpha():
            end = at
            while end < len(body) and (body[end].isalnum() or body[end] in "-_"):
                end += 1
            out.append("(?:" + _translate(body[at:end], rules, (*seen, name)) + ")")
            at = end
        else:
            raise ValueError(f"unexpected {c!r} in rule {name!r}")
    return "".join(out)


def gbnf_regex(grammar: str) -> re.Pattern[str]:
    """The language of ``grammar``'s ``root`` rule as a compiled regex (use ``fullmatch``)."""
    return re.compile(_translate("root", _rules(grammar), ()), re.DOTALL)
