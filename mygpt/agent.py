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
import operator
import random
import re
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from .errors import DataError, MyGPTError
from .generate import generate
from .instruct import item_loader
from .model import GPT
from .tokenizer import EOT_ID, decode, encode


class ToolError(MyGPTError, ValueError):
    """A tool call cannot be run (unknown tool, or an argument the tool does not accept)."""


# --- tools ----------------------------------------------------------------------------------------

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv}


def calculator(expression: str) -> str:
    """Evaluate ``+ - * /`` over numbers (and brackets, unary minus) by walking Python's parse tree.

    Never ``eval``: anything other than numbers and those operators raises :class:`ToolError`.
    Whole results print without a decimal point; others are rounded to 4 decimals.
    """
    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return -walk(node.operand) if isinstance(node.op, ast.USub) else walk(node.operand)
        raise ToolError(f"calculator accepts numbers and + - * / only, not {ast.dump(node)[:40]}.")

    if not isinstance(expression, str) or len(expression) > 100:
        raise ToolError("calculator wants an expression string of at most 100 characters.")
    try:
        value = walk(ast.parse(expression.strip(), mode="eval").body)
    except SyntaxError:
        raise ToolError(f"calculator cannot parse {expression!r}.") from None
    except ZeroDivisionError:
        raise ToolError("calculator: division by zero.") from None
    return format_number(value)


def format_number(value: float) -> str:
    """``42`` for whole numbers, else rounded to 4 decimals without trailing zeros."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4f}".rstrip("0").rstrip(".")


#: Factors to one base unit per dimension (length: metre, mass: gram, time: second).
UNITS = {"km": 1000.0, "m": 1.0, "cm": 0.01, "mm": 0.001,
         "kg": 1000.0, "g": 1.0,
         "h": 3600.0, "min": 60.0, "s": 1.0}
_DIMENSION = {"km": "length", "m": "length", "cm": "length", "mm": "length",
              "kg": "mass", "g": "mass", "h": "time", "min": "time", "s": "time"}


def convert(argument: str) -> str:
    """Convert ``"<number> <unit> to <unit>"`` (units in :data:`UNITS`), e.g. ``"3 km to m"``."""
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([a-z]+)\s+to\s+([a-z]+)\s*", argument or "")
    if not match:
        raise ToolError(f"convert wants '<number> <unit> to <unit>', got {argument!r}.")
    value, src, dst = float(match[1]), match[2], match[3]
    for unit in (src, dst):
        if unit not in UNITS:
            raise ToolError(f"convert knows {', '.join(UNITS)}; not {unit!r}.")
    if _DIMENSION[src] != _DIMENSION[dst]:
        raise ToolError(f"cannot convert {_DIMENSION[src]} ({src}) to {_DIMENSION[dst]} ({dst}).")
    return format_number(value * UNITS[src] / UNITS[dst])


#: The table the ``lookup`` tool reads: the model cannot know these dates, it must look them up.
EVENTS = {"launch": "2024-03-14", "audit": "2024-05-02", "review": "2024-06-21",
          "offsite": "2024-08-09", "release": "2024-09-30", "retreat": "2024-10-17",
          "deadline": "2024-11-28", "party": "2024-12-19"}


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
        return [(self.prompt(), False), (self.call() + "\n", True),
                (f"RESULT {self.answer}\n", False), (f"A: {self.answer}", True)]

    def transcript(self) -> str:
        """The whole correct transcript after the prompt (CALL, RESULT and answer lines)."""
        return "".join(text for text, _ in self.segments()[1:])


def _arithmetic(rng: random.Random) -> Task:
    op = rng.choice("+-*")
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    expr = f"{a} {op} {b}"
    return Task(f"what is {expr}?", "calculator", expr, calculator(expr))


def _conversion(rng: random.Random) -> Task:
    src, dst = rng.choice([("km", "m"), ("m", "cm"), ("kg", "g"), ("h", "min"), ("min", "s"),
                           ("m", "mm"), ("cm", "mm")])
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


def create_task_loader(tasks: list[Task], batch_size: int = 4, shuffle: bool = True,
                       seed: int = 123) -> DataLoader:
    """:func:`mygpt.instruct.item_loader` over the tasks' :func:`task_item` items."""
    if not tasks:
        raise DataError("create_task_loader got no tasks.")
    return item_loader([task_item(t) for t in tasks], batch_size, shuffle, seed)


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
        out = generate(model, torch.tensor([ids + new]), step, eos_id=EOT_ID)[0, len(ids) + len(new):]
        new += out.tolist()
        if EOT_ID in new:
            new = new[:new.index(EOT_ID)]
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
    text += line
    answer = line[len("A: "):].strip() if line.startswith("A: ") else None
    return AgentResult(text, answer, tool_called)


def success_rate(model: GPT, tasks: list[Task]) -> tuple[float, list[AgentResult]]:
    """The share of ``tasks`` whose answer is exactly right, and every run's result."""
    results = [run_agent(model, t.question) for t in tasks]
    wins = sum(r.answer == t.answer for r, t in zip(results, tasks))
    return wins / len(tasks), results
