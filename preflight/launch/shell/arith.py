"""Bash arithmetic (`$((...))`, `((...))`, `let`, `declare -i`, array indices) on 64-bit
integers, as bash's expr.c evaluates it; None wherever a value is not known or the
expression is outside the part implemented here (never a guess)."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

Lookup = Callable[[str], "str | None"]  # a variable's text; "" when unset; None: unknown

_TOKEN = re.compile(r"\s*(0[xX][0-9a-fA-F]+|[0-9]+#[0-9a-zA-Z@_]+|[0-9]+|[A-Za-z_][A-Za-z0-9_]*"
                    r"|\*\*|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%<>&|^!~()])")
_MASK = (1 << 64) - 1
MAX_DEPTH = 32


def _wrap(v: int) -> int:
    v &= _MASK
    return v - (1 << 64) if v >> 63 else v


def _number(tok: str) -> int | None:
    try:
        if "#" in tok:
            base, digits = tok.split("#", 1)
            return int(digits, int(base)) if int(base) <= 36 else None
        if tok.lower().startswith("0x"):
            return int(tok, 16)
        if len(tok) > 1 and tok.startswith("0"):
            return int(tok, 8)  # bash: a leading 0 is octal (08 is an error)
        return int(tok)
    except ValueError:
        return None


def evaluate(expr: str, lookup: Lookup, depth: int = 0) -> int | None:
    """The value of a side-effect-free expression; None when not known."""
    if depth > MAX_DEPTH:
        return None
    expr = expr.strip()
    if not expr:
        return 0
    pos, tokens = 0, []
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            return None
        tokens.append(m.group(1))
        pos = m.end()
        if expr[pos:].strip() == "":
            break
    py = []
    for tok in tokens:
        if tok[0].isdigit():
            n = _number(tok)
            if n is None:
                return None
            py.append(str(n))
        elif tok[0].isalpha() or tok[0] == "_":
            text = lookup(tok)
            if text is None:
                return None
            value = evaluate(text, lookup, depth + 1) if text.strip() else 0
            if value is None:
                return None
            py.append(f"({value})")
        else:
            py.append({"&&": " and ", "||": " or ", "!": " not ", "/": "//"}.get(tok, tok))
    try:
        tree = ast.parse(" ".join(py), mode="eval")
        return _eval(tree.body)
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError, MemoryError):
        return None


def _eval(node: ast.AST) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return _wrap(node.value)
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand)
        if isinstance(node.op, ast.USub):
            return _wrap(-v)
        if isinstance(node.op, ast.UAdd):
            return v
        if isinstance(node.op, ast.Invert):
            return _wrap(~v)
        if isinstance(node.op, ast.Not):
            return int(not v)
    if isinstance(node, ast.BoolOp):
        values = [_eval(v) for v in node.values]
        return int(all(values)) if isinstance(node.op, ast.And) else int(any(values))
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        a, b = _eval(node.left), _eval(node.comparators[0])
        cmp = type(node.ops[0])
        return int({ast.Lt: a < b, ast.LtE: a <= b, ast.Gt: a > b, ast.GtE: a >= b,
                    ast.Eq: a == b, ast.NotEq: a != b}[cmp])
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left), _eval(node.right)
        op = type(node.op)
        if op is ast.FloorDiv or op is ast.Mod:
            if b == 0:
                raise ZeroDivisionError
            q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)  # C truncation
            return _wrap(q if op is ast.FloorDiv else a - q * b)
        if op is ast.Pow:
            if b < 0 or b > 64 and abs(a) > 1:
                raise ValueError
            return _wrap(a ** b)
        if op in (ast.LShift, ast.RShift):
            b &= 63
            return _wrap(a << b if op is ast.LShift else a >> b)
        simple: dict[type[ast.operator], Callable[[], int]] = {
            ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
            ast.BitAnd: lambda: a & b, ast.BitOr: lambda: a | b, ast.BitXor: lambda: a ^ b}
        return _wrap(simple[op]())
    raise ValueError("not arithmetic")


_ASSIGN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*([-+*/%&|^]|<<|>>)?=(?!=)(.*)$", re.S)
_INCR = re.compile(r"\s*(?:(\+\+|--)\s*([A-Za-z_][A-Za-z0-9_]*)"
                   r"|([A-Za-z_][A-Za-z0-9_]*)\s*(\+\+|--))\s*$")


def run(expr: str, lookup: Lookup) -> tuple[int | None, dict[str, int | None]]:
    """`((expr))` / one `let` argument: (value, {variable: new value or None}). Handles
    comma lists, `N = e`, `N op= e`, `N++`, `++N`; other side effects make the value
    and every variable named in the expression unknown."""
    assigned: dict[str, int | None] = {}

    def look(name: str) -> str | None:
        if name in assigned:
            v = assigned[name]
            return None if v is None else str(v)
        return lookup(name)

    value: int | None = 0
    for part in _split_commas(expr):
        m = _ASSIGN.match(part)
        inc = _INCR.match(part)
        if m:
            name, op, rhs = m.groups()
            right = evaluate(rhs, look)
            if op and right is not None:
                right = evaluate(f"{name} {op} ({right})", look)
            assigned[name] = value = right
        elif inc:
            name = inc.group(2) or inc.group(3)
            sign = 1 if "+" in (inc.group(1) or inc.group(4)) else -1
            old = evaluate(name, look)
            new = None if old is None else _wrap(old + sign)
            assigned[name] = new
            value = new if inc.group(1) else old
        elif re.search(r"(?<![=!<>])=(?!=)|\+\+|--", part):
            for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", part):
                assigned[name] = None
            value = None
        else:
            value = evaluate(part, look)
    return value, assigned


def _split_commas(expr: str) -> list[str]:
    depth, start, parts = 0, 0, []
    for i, c in enumerate(expr):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if c == "," and depth == 0:
            parts.append(expr[start:i])
            start = i + 1
    parts.append(expr[start:])
    return parts


_ADJACENT = re.compile(r"[A-Za-z0-9_#]\s+[A-Za-z0-9_]")
# characters no bash arithmetic expression holds (expr.c has no floats, braces, quotes or
# statements): a variable whose value holds one fails where it is evaluated
_NEVER = re.compile(r"[{}.;\"'\\$]")


def syntax_error(expr: str, lookup: Lookup, depth: int = 0) -> str | None:
    """The text bash's expr.c rejects for certain: two operands with only blanks between
    them (`a b`, `4 4`), in the expression or in the value of a variable it names (bash
    evaluates a variable's value as an expression). None when there is none, or when a
    value is not known."""
    if _ADJACENT.search(expr):
        return expr.strip()
    if depth >= 4:
        return None
    for name in set(re.findall(r"(?<![\w#])[A-Za-z_]\w*", expr)):
        value = lookup(name)
        if value and (_NEVER.search(value) or syntax_error(value, lookup, depth + 1)):
            return value.strip()
    return None
