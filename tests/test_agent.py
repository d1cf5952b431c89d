"""Tests of mygpt.agent: the safe calculator, tools, task generation, call parsing, the loop."""

import pytest
import torch

import mygpt
from mygpt import agent as A
from mygpt import instruct as I
from mygpt.tokenizer import EOT_ID


def test_calculator_arithmetic():
    assert A.calculator("17 + 25") == "42"
    assert A.calculator("(2 + 3) * -4") == "-20"
    assert A.calculator("7 / 2") == "3.5"
    assert A.calculator("1 / 3") == "0.3333"


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os')",
        "2 ** 10",
        "abs(-1)",
        "x + 1",
        "'a' + 'b'",
        "1 / 0",
        "2 +",
        "[1] * 3",
        "True + 1",
        "9" * 200,
    ],
)
def test_calculator_refuses_everything_else(expr):
    with pytest.raises(A.ToolError):
        A.calculator(expr)


def test_calculator_is_exact_where_it_prints_a_whole_number():
    # Through floats, 10**98 - 1 would print as 9999...97690370245143...: a wrong "exact" integer.
    assert A.calculator("9" * 98 + "/1") == "9" * 98
    assert A.calculator("9" * 48 + " * " + "9" * 48) == str(int("9" * 48) ** 2)
    assert A.calculator("0x10 + 0o7 + .5 + 5.") == "28.5"
    assert A.calculator("12345678901234567 + 1") == "12345678901234568"  # beyond 2**53
    assert A.calculator("0.1 + 0.2") == "0.3" and A.calculator("0.1 * 3 - 0.3") == "0"
    assert A.calculator("1e20 + 1") == "100000000000000000001"  # the literal as written
    assert A.calculator("10 / 4 * 4") == "10" and A.calculator("2 / 3") == "0.6667"
    assert A.calculator("-1 / 3") == "-0.3333" and A.calculator("-0.00001") == "0"  # never "-0"
    assert A.calculator("1_000 + 0.5") == "1000.5"


@pytest.mark.parametrize(
    "expr",
    [
        "1e308 * 10",
        "-1e308 * 10",
        "1e308 + 1e308",
        "1e309",
        "1e999999999",
        "1e-999999999 * 1",
        "9e307 * 9e307 * 9e307",
    ],
)
def test_calculator_refuses_overflow_instead_of_inf(expr):
    with pytest.raises(A.ToolError, match="too large|out of range"):
        A.calculator(expr)


def test_run_tool_reports_overflow_as_a_tool_error():
    # run_agent turns a ToolError into the RESULT line "error: ...": the model never sees "inf".
    with pytest.raises(A.ToolError) as info:
        A.run_tool("calculator", "1e308 * 10")
    assert "inf" not in str(info.value).split()


def test_convert_is_exact_and_refuses_overflow():
    assert A.convert("99999999999999999999 km to m") == "99999999999999999999000"
    assert A.convert("5 cm to mm") == "50" and A.convert("1 mm to km") == "0"
    with pytest.raises(A.ToolError, match="too large"):
        A.convert("9" * 400 + " km to mm")
    with pytest.raises(A.ToolError, match="not a finite number"):
        A.format_number(float("inf"))
    with pytest.raises(A.ToolError, match="not a finite number"):
        A.format_number(float("nan"))


def test_tool_answers_of_the_synthetic_tasks_are_unchanged():
    # The exact arithmetic gives the same strings as before on every generated task.
    tasks = A.make_tasks(300, seed=0)
    assert [t.answer for t in tasks[:5]] == ["44", "35000", "2024-06-21", "-23", "76000"]
    for t in tasks:
        if t.tool == "calculator":
            a, op, b = t.argument.split()
            assert t.answer == str(
                {"+": int.__add__, "-": int.__sub__, "*": int.__mul__}[op](int(a), int(b))
            )


def test_convert_and_lookup():
    assert A.convert("3 km to m") == "3000"
    assert A.convert("90 min to h") == "1.5"
    with pytest.raises(A.ToolError):
        A.convert("3 kg to m")
    with pytest.raises(A.ToolError):
        A.convert("three km to m")
    assert A.lookup("launch") == A.EVENTS["launch"]
    with pytest.raises(A.ToolError):
        A.lookup("birthday")


def test_parse_and_run_tool():
    assert A.parse_call("CALL calculator(17 + 25)") == ("calculator", "17 + 25")
    assert A.run_tool(*A.parse_call("CALL convert(2 kg to g)")) == "2000"
    with pytest.raises(A.ToolError):
        A.parse_call("A: 42")
    with pytest.raises(A.ToolError):
        A.run_tool("shell", "ls")
    assert issubclass(A.ToolError, mygpt.MyGPTError) and issubclass(A.ToolError, ValueError)
    assert A.ToolError is mygpt.ToolError is mygpt.errors.ToolError  # one type, in mygpt.errors


def test_tasks_are_deterministic_and_correct():
    tasks = A.make_tasks(30, seed=5)
    assert tasks == A.make_tasks(30, seed=5) and tasks != A.make_tasks(30, seed=6)
    assert {t.tool for t in tasks} == set(A.TOOLS)
    for t in tasks:
        assert A.run_tool(t.tool, t.argument) == t.answer
        lines = (t.prompt() + t.transcript()).split("\n")
        assert lines[0] == f"Q: {t.question}" and lines[3] == f"A: {t.answer}"


def test_call_numbers_are_the_question_tokens():
    # The space after the bracket makes " 17" in the call the same token as in the question.
    task = A.Task("what is 17 + 25?", "calculator", "17 + 25", "42")
    assert task.call() == "CALL calculator( 17 + 25)"
    assert A.run_tool(*A.parse_call(task.call())) == "42"
    question, call = set(mygpt.encode(task.prompt())), mygpt.encode(task.call())
    assert {mygpt.encode(" 17")[0], mygpt.encode(" 25")[0]} <= question & set(call)


def test_task_items_encode_the_whole_text_and_flag_only_what_the_model_writes():
    for task in A.make_tasks(60, seed=7):
        ids, flags = A.task_item(task)
        assert ids == mygpt.encode(task.prompt() + task.transcript())
        targets = mygpt.decode([i for i, f in zip(ids, flags) if f])
        assert targets == f"{task.call()}\nA: {task.answer}"  # not the question, not RESULT


def test_task_loader_masks_question_and_result_lines():
    task = A.make_tasks(1, seed=3)[0]
    x, y = next(iter(A.create_task_loader([task], batch_size=1, shuffle=False)))
    kept = y[0][y[0] != I.IGNORE_INDEX].tolist()
    assert mygpt.decode(kept[:-1]) == f"{task.call()}\nA: {task.answer}" and kept[-1] == EOT_ID
    with pytest.raises(mygpt.DataError):
        A.create_task_loader([])


def _tiny_model():
    torch.manual_seed(0)
    return mygpt.GPT(
        mygpt.GPTConfig(
            vocab_size=EOT_ID + 1, context_length=64, n_embd=64, n_layer=2, n_head=2, dropout=0.0
        )
    )


def test_generate_line_stops_at_newline():
    model = _tiny_model().eval()
    line = A.generate_line(model, "Q: hi\n", max_new_tokens=6, chunk=2)
    assert "\n" not in line


def test_agent_loop_after_training_on_one_task():
    # A tiny model trained on one transcript learns to emit its call; the loop then really
    # runs the tool and the model copies the result into its answer.
    task = A.make_tasks(1, seed=3)[0]
    model = _tiny_model()
    loader = A.create_task_loader([task], batch_size=1)
    untrained = A.run_agent(model.eval(), task.question)
    assert untrained.answer != task.answer
    mygpt.train(model, loader, cfg=mygpt.TrainConfig(max_steps=60, lr=3e-3, log=False))
    model.eval()
    result = A.run_agent(model, task.question)
    assert result.tool_called
    assert result.transcript == task.prompt() + task.transcript()
    rate, results = A.success_rate(model, [task])
    assert rate == 1.0 and results[0].answer == task.answer


def test_generate_lines_equals_generate_line_for_each_text():
    model = _tiny_model().double().eval()
    texts = ["Q: hi\n", "Q: what is 2 + 2?\n", "a", "Q: convert 3 km to m.\nCALL convert( 3"]
    batched = A.generate_lines(model, texts, max_new_tokens=7)
    assert batched == [A.generate_line(model, t, max_new_tokens=7, chunk=3) for t in texts]


def test_run_agents_equals_run_agent_one_question_at_a_time():
    # Untrained, the model writes lines that are not calls; trained a little on a few tasks,
    # it writes calls, right and wrong: the batched loop must give every question the same
    # transcript as the loop run one question at a time.
    torch.manual_seed(0)
    tasks = A.make_tasks(9, seed=5)
    questions = [t.question for t in tasks] + ["what is 1 / 0?"]
    model = _tiny_model().double()
    untrained = [A.run_agent(model.eval(), q) for q in questions]  # no calls, just text
    assert A.run_agents(model, questions) == untrained
    loader = A.create_task_loader(tasks[:6], batch_size=3)
    mygpt.train(model, loader, cfg=mygpt.TrainConfig(max_steps=150, lr=3e-3, log=False))
    model.eval()
    batched = A.run_agents(model, questions)
    single = [A.run_agent(model, q) for q in questions]
    assert batched == single
    # the comparison covered tool calls that ran, and lines that were not calls
    assert any(r.tool_called for r in single) and not any(r.tool_called for r in untrained)
