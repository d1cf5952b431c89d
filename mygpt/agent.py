"""A small agent: a rigid tool-call format, three safe tools, synthetic tasks and the loop.

A transcript looks like this (one line each, then ``<|endoftext|>``)::

    Q: what is 17 + 25?
    CALL calculator( 17 + 25)
    RESULT 42
    A: 42

The model writes the ``CALL`` line; :func:`run_agent` stops it at the end of that line, runs the
tool itself (:func:`run_tool`), appends the ``RESULT`` line, and lets the model write the answer.
Tasks are generated in code (:func:`make_tasks`) so that every answer can be checked; in
training (:func:`create_task_loader`) only the lines the model writes are targets.
"""

from __future__ import annotations

import ast
import math
import operator
import random
import re
import sys
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch.utils.data import DataLoader

from .errors import DataError, ToolError
from .generation import generate
from .instruct import item_loader
from .model import GPT
from .tokenizer import EOT_ID, decode, encode
from .training import History, TrainConfig, train

# --- tools ----------------------------------------------------------------------------------------

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}

#: The largest magnitude the tools accept, in a number or a result: float's range (about 1.8e308).
MAX_MAGNITUDE = Fraction(sys.float_info.max)

#: A literal's decimal exponent beyond this is refused before it is built: an exact ``1e-999999999``
#: would need a billion-digit denominator.
_MAX_EXPONENT = 400


def _in_range(value: Fraction) -> Fraction:
    """``value``, or :class:`ToolError` when it is beyond :data:`MAX_MAGNITUDE` (where a float
    would have become ``inf``)."""
    if abs(value) > MAX_MAGNITUDE:
        raise ToolError("result too large: the tools work with numbers up to about 1.8e308.")
    return value


def _literal(text: str) -> Fraction:
    """The exact value of a number as written (``"0.1"`` is 1/10, not the float nearest to it)."""
    mantissa, _, exponent = text.lower().replace("_", "").partition("e")
    if exponent and abs(int(exponent)) > _MAX_EXPONENT:
        raise ToolError(
            f"number {text!r} is out of range: exponents beyond +-{_MAX_EXPONENT} are refused."
        )
    return _in_range(Fraction(mantissa) * Fraction(10) ** int(exponent or 0))


def calculator(expression: str) -> str:
    """Evaluate ``+ - * /`` over numbers (and brackets, unary minus) by walking Python's parse tree.

    Never ``eval``: anything other than numbers and those operators raises :class:`ToolError`.
    Arithmetic is exact (fractions of integers, numbers taken as written), so a whole result is
    printed exactly; others are rounded to 4 decimals. A number or result beyond
    :data:`MAX_MAGNITUDE` raises :class:`ToolError` (where floats would give ``inf``).
    """

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return _in_range(Fraction(node.value))
        if isinstance(node, ast.Constant) and type(node.value) is float:
            # From the source text, not node.value: the float 0.1 is not 1/10, and 1e20 + 1
            # needs more digits than a float has.
            return _literal(ast.get_source_segment(source, node))
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _in_range(_OPS[type(node.op)](walk(node.left), walk(node.right)))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return -walk(node.operand) if isinstance(node.op, ast.USub) else walk(node.operand)
        raise ToolError(f"calculator accepts numbers and + - * / only, not {ast.dump(node)[:40]}.")

    if not isinstance(expression, str) or len(expression) > 100:
        raise ToolError("calculator wants an expression string of at most 100 characters.")
    source = expression.strip()
    try:
        value = walk(ast.parse(source, mode="eval").body)
    except SyntaxError:
        raise ToolError(f"calculator cannot parse {expression!r}.") from None
    except ZeroDivisionError:
        raise ToolError("calculator: division by zero.") from None
    return format_number(value)


def format_number(value: float | Fraction) -> str:
    """``42`` for whole numbers (exactly), else rounded to 4 decimals without trailing zeros.

    Raises :class:`ToolError` for ``inf``/``nan`` or a value beyond :data:`MAX_MAGNITUDE`.
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError(
            f"result {value} is not a finite number: the tools work with numbers up to "
            "about 1.8e308."
        )
    value = _in_range(Fraction(value))
    if value.denominator == 1:
        return str(value.numerator)
    units = round(value * 10_000)  # an int: exact, ties to even like float formatting
    whole, frac = divmod(abs(units), 10_000)
    text = f"{whole}.{frac:04d}".rstrip("0").rstrip(".")
    return "-" + text if units < 0 else text


#: Factors to one base unit per dimension (length: metre, mass: gram, time: second).
UNITS = {
    "km": 1000.0,
    "m": 1.0,
    "cm": 0.01,
    "mm": 0.001,
    "kg": 1000.0,
    "g": 1.0,
    "h": 3600.0,
    "min": 60.0,
    "s": 1.0,
}
_DIMENSION = {
    "km": "length",
    "m": "length",
    "cm": "length",
    "mm": "length",
    "kg": "mass",
    "g": "mass",
    "h": "time",
    "min": "time",
    "s": "time",
}


def convert(argument: str) -> str:
    """Convert ``"<number> <unit> to <unit>"`` (units in :data:`UNITS`), e.g. ``"3 km to m"``."""
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([a-z]+)\s+to\s+([a-z]+)\s*", argument or "")
    if not match:
        raise ToolError(f"convert wants '<number> <unit> to <unit>', got {argument!r}.")
    value, src, dst = match[1], match[2], match[3]
    for unit in (src, dst):
        if unit not in UNITS:
            raise ToolError(f"convert knows {', '.join(UNITS)}; not {unit!r}.")
    if _DIMENSION[src] != _DIMENSION[dst]:
        raise ToolError(f"cannot convert {_DIMENSION[src]} ({src}) to {_DIMENSION[dst]} ({dst}).")
    # Exact, like the calculator: the factors as written (0.01 is 1/100), the number as given.
    factor = Fraction(repr(UNITS[src])) / Fraction(repr(UNITS[dst]))
    return format_number(_literal(value) * factor)


#: The table the ``lookup`` tool reads: the model cannot know these dates, it must look them up.
EVENTS = {
    "launch": "2024-03-14",
    "audit": "2024-05-02",
    "review": "2024-06-21",
    "offsite": "2024-08-09",
    "release": "2024-09-30",
    "retreat": "2024-10-17",
    "deadline": "2024-11-28",
    "party": "2024-12-19",
}


def lookup(name: str) -> str:
    """The date of event ``name`` in :data:`EVENTS`."""
    key = (name or "").strip()
    if key not in EVENTS:
        raise ToolError(f"lookup knows the events {', '.join(EVENTS)}; not {key!r}.")
    return EVENTS[key]


TOOLS = {"calculator": calculator, "convert": convert, "lookup": lookup}

_CALL = re.compile(r"CALL ([a-z]+)\((.*)\)")


def parse_call(line: str) -> tuple[str, str]:
    """``"CALL tool(argument)"`` -> ``(tool, argument)``; :class:`ToolError` if it is not one."""
    match = _CALL.fullmatch(line.strip())
    if not match:
        raise ToolError(f"Not a tool call: {line!r} (expected 'CALL tool(argument)').")
    return match[1], match[2]


def run_tool(name: str, argument: str) -> str:
    """Run tool ``name`` of :data:`TOOLS` on ``argument``; returns its result as text."""
    if name not in TOOLS:
        raise ToolError(f"Unknown tool {name!r}; the tools are {', '.join(TOOLS)}.")
    return TOOLS[name](argument)


# --- synthetic tasks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One verifiable task: the question, the call that solves it, and the correct answer."""

    question: str
    tool: str
    argument: str
    answer: str

    def prompt(self) -> str:
        """What the model is given: ``"Q: <question>\\n"``."""
        return f"Q: {self.question}\n"

    def call(self) -> str:
        """The correct ``CALL`` line, e.g. ``"CALL calculator( 17 + 25)"``.

        The space after the bracket is deliberate: GPT-2's tokenizer gives ``" 17"`` and ``"17"``
        different ids, and with the space every number of the call is the very token of the
        question, which the model can copy instead of translating it.
        """
        return f"CALL {self.tool}( {self.argument})"

    def segments(self) -> list[tuple[str, bool]]:
        """The training text in parts, each with whether the model is trained to write it.

        The question is given and the ``RESULT`` line is written by the tool, so neither is a
        target; asking the model to predict a tool's result (say, 47 * 86) would spend its
        capacity on what the tool is there to do.
        """
        return [
            (self.prompt(), False),
            (self.call() + "\n", True),
            (f"RESULT {self.answer}\n", False),
            (f"A: {self.answer}", True),
        ]

    def transcript(self) -> str:
        """The whole correct transcript after the prompt (CALL, RESULT and answer lines)."""
        return "".join(text for text, _ in self.segments()[1:])


def _arithmetic(rng: random.Random) -> Task:
    op = rng.choice("+-*")
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    expr = f"{a} {op} {b}"
    return Task(f"what is {expr}?", "calculator", expr, calculator(expr))


def _conversion(rng: random.Random) -> Task:
    src, dst = rng.choice(
        [
            ("km", "m"),
            ("m", "cm"),
            ("kg", "g"),
            ("h", "min"),
            ("min", "s"),
            ("m", "mm"),
            ("cm", "mm"),
        ]
    )
    arg = f"{rng.randint(2, 99)} {src} to {dst}"
    return Task(f"convert {arg}.", "convert", arg, convert(arg))


def _date(rng: random.Random) -> Task:
    name = rng.choice(sorted(EVENTS))
    return Task(f"when is the {name}?", "lookup", name, EVENTS[name])


def make_tasks(n: int, seed: int = 0) -> list[Task]:
    """``n`` tasks, a third each of arithmetic, unit conversion and date lookup, from ``seed``."""
    rng = random.Random(seed)
    makers = [_arithmetic, _conversion, _date]
    return [makers[i % 3](rng) for i in range(n)]


def task_item(task: Task) -> tuple[list[int], list[bool]]:
    """``(token ids, target flags)`` of a task's text, the item :func:`mygpt.instruct.collate` takes.

    Each segment ends at a line break, which GPT-2's tokenizer always splits from what follows,
    so encoding the segments one by one gives the ids of the whole text (tested).
    """
    ids: list[int] = []
    flags: list[bool] = []
    for text, target in task.segments():
        part = encode(text)
        ids += part
        flags += [target] * len(part)
    return ids, flags


def create_task_loader(
    tasks: list[Task], batch_size: int = 4, shuffle: bool = True, seed: int = 123
) -> DataLoader:
    """:func:`mygpt.instruct.item_loader` over the tasks' :func:`task_item` items."""
    if not tasks:
        raise DataError("create_task_loader got no tasks.")
    return item_loader([task_item(t) for t in tasks], batch_size, shuffle, seed)


def train_agent(
    model: GPT,
    train_tasks: list[Task],
    val_tasks: list[Task],
    cfg: TrainConfig,
    batch_size: int = 4,
) -> History:
    """Fine-tune ``model`` in place on ``train_tasks`` with :func:`mygpt.train`.

    The batches follow ``cfg.seed`` (and so does the torch generator), so two starts given the
    same settings see the same examples in the same order: the only difference is the weights.
    The validation loss is measured on ``val_tasks``.
    """
    loader = create_task_loader(train_tasks, batch_size=batch_size, seed=cfg.seed)
    val_loader = create_task_loader(val_tasks, batch_size=30, shuffle=False)
    torch.manual_seed(cfg.seed)
    return train(model, loader, val_loader, cfg=cfg)


# --- the loop -------------------------------------------------------------------------------------


def generate_line(model: GPT, text: str, max_new_tokens: int = 24, chunk: int = 8) -> str:
    """Greedily continue ``text`` up to the end of the current line (or ``<|endoftext|>``).

    Decodes in chunks of ``chunk`` tokens with :func:`mygpt.generate` and stops as soon as the
    new text holds a newline; returns the new text without the newline.
    """
    ids = encode(text)
    new: list[int] = []
    while len(new) < max_new_tokens:
        step = min(chunk, max_new_tokens - len(new))
        out = generate(model, torch.tensor([ids + new]), step, eos_id=EOT_ID)[
            0, len(ids) + len(new) :
        ]
        new += out.tolist()
        if EOT_ID in new:
            new = new[: new.index(EOT_ID)]
            break
        if "\n" in decode(new):
            break
    return decode(new).split("\n")[0]


@dataclass
class AgentResult:
    """What :func:`run_agent` did: the full transcript, the answer, and whether a tool ran."""

    transcript: str
    answer: str | None
    tool_called: bool


def _finish(text: str, line: str, tool_called: bool) -> AgentResult:
    """The result once the model's last line is written: ``A: ...`` gives the answer."""
    text += line
    answer = line[len("A: ") :].strip() if line.startswith("A: ") else None
    return AgentResult(text, answer, tool_called)


def run_agent(model: GPT, question: str, max_line_tokens: int = 24) -> AgentResult:
    """Ask ``model`` ``question`` in the tool-call format and run the tool it calls.

    The model writes one line; if it is ``CALL tool(arg)``, the tool runs here and its result (or
    ``error: ...``) is appended as ``RESULT ...``; then the model writes ``A: ...``. A first line
    that is already ``A: ...`` is taken as an answer without a tool.
    """
    text = f"Q: {question}\n"
    line = generate_line(model, text, max_line_tokens)
    tool_called = False
    if line.startswith("CALL "):
        try:
            result = run_tool(*parse_call(line))
            tool_called = True
        except ToolError as e:
            result = f"error: {e}"
        text += f"{line}\nRESULT {result}\n"
        line = generate_line(model, text, max_line_tokens)
    return _finish(text, line, tool_called)


def generate_lines(model: GPT, texts: list[str], max_new_tokens: int = 24) -> list[str]:
    """:func:`generate_line` for several texts at once: one batched greedy run.

    The prompts are left-padded (masked out of attention) and every row runs for
    ``max_new_tokens`` tokens or until all rows end the text; each row is then cut at its first
    line break. Greedy decoding is causal, so the tokens up to that line break are those that
    :func:`generate_line` writes for the text alone (tested).
    """
    ids = [encode(text) for text in texts]
    width = max(len(i) for i in ids)
    lines = []
    for row in generate(model, ids, max_new_tokens, eos_id=EOT_ID)[:, width:].tolist():
        if EOT_ID in row:
            row = row[: row.index(EOT_ID)]
        lines.append(decode(row).split("\n")[0])
    return lines


def run_agents(model: GPT, questions: list[str], max_line_tokens: int = 24) -> list[AgentResult]:
    """:func:`run_agent` for many questions, each model turn batched over all of them.

    The same two turns (the call or answer line; after a tool's result, the answer line), with
    every question's line generated in one batch by :func:`generate_lines`: many times faster
    than one question at a time, with the same results (tested).
    """
    texts = [f"Q: {q}\n" for q in questions]
    called = [False] * len(questions)
    first = generate_lines(model, texts, max_line_tokens)
    again = [i for i, line in enumerate(first) if line.startswith("CALL ")]
    for i in again:
        try:
            result = run_tool(*parse_call(first[i]))
            called[i] = True
        except ToolError as e:
            result = f"error: {e}"
        texts[i] += f"{first[i]}\nRESULT {result}\n"
    final = list(first)
    if again:
        for i, line in zip(
            again, generate_lines(model, [texts[i] for i in again], max_line_tokens)
        ):
            final[i] = line
    return [_finish(text, line, c) for text, line, c in zip(texts, final, called)]


def success_rate(model: GPT, tasks: list[Task]) -> tuple[float, list[AgentResult]]:
    """The share of ``tasks`` whose answer is exactly right, and every run's result
    (:func:`run_agents`, batched)."""
    results = run_agents(model, [t.question for t in tasks])
    wins = sum(r.answer == t.answer for r, t in zip(results, tasks))
    return wins / len(tasks), results
