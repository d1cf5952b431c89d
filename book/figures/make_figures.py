"""Draw the book's concept figures as SVG files beside this script.

One style for all (the chapter map's): light boxes with a dark outline on a white card, so that
each figure reads the same in the site's light and dark themes. Run ``python make_figures.py``
after changing a figure; the SVG files are committed. (kv-cache.svg, training-loop.svg and
chapter-map.svg are written by hand in the same style.)
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent

STYLE = """
    <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"
            orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker>
    <style>
      .bg { fill: #ffffff; stroke: #d0d7de; stroke-width: 1; }
      .box { fill: #eef4fb; stroke: #2b6cb0; stroke-width: 1.5; }
      .warm { fill: #fdf2e9; stroke: #c05621; stroke-width: 1.5; }
      .grey { fill: #f3f3f3; stroke: #999999; stroke-width: 1.2; }
      .dark { fill: #2b6cb0; stroke: #2b6cb0; stroke-width: 1; }
      .title { font-size: 13px; font-weight: bold; fill: #1a202c; }
      .what { font-size: 11.5px; fill: #2d3748; }
      .white { font-size: 11.5px; fill: #ffffff; }
      .code { font-size: 11px; fill: #2b6cb0; font-family: DejaVu Sans Mono, monospace; }
      .edge { stroke: #555; stroke-width: 1.5; fill: none; marker-end: url(#arrow); }
      .dash { stroke: #c05621; stroke-width: 1.5; fill: none; stroke-dasharray: 5 3;
              marker-end: url(#arrow); }
    </style>"""


class Figure:
    def __init__(self, width: int, height: int, title: str, desc: str) -> None:
        self.w, self.h, self.parts = width, height, []
        self.head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" '
            f'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">\n'
            f"  <title>{escape(title)}</title>\n  <desc>{escape(desc)}</desc>\n"
            f"  <defs>{STYLE}\n  </defs>\n"
            f'  <rect class="bg" x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" '
            f'rx="10"/>'
        )

    def box(self, x, y, w, h, title=None, lines=(), cls="box", code=()):
        self.parts.append(f'<rect class="{cls}" x="{x}" y="{y}" width="{w}" height="{h}" rx="8"/>')
        ty = y + 20
        if title:
            self.text(x + 10, ty, title, "title")
            ty += 19
        for line in lines:
            self.text(x + 10, ty, line, "what")
            ty += 16
        for line in code:
            self.text(x + 10, ty, line, "code")
            ty += 16

    def cell(self, x, y, w, h, label="", cls="box", text_cls="what"):
        self.parts.append(f'<rect class="{cls}" x="{x}" y="{y}" width="{w}" height="{h}" rx="3"/>')
        if label:
            self.parts.append(
                f'<text class="{text_cls}" x="{x + w / 2}" y="{y + h / 2 + 4}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )

    def text(self, x, y, s, cls="what", anchor="start"):
        self.parts.append(
            f'<text class="{cls}" x="{x}" y="{y}" text-anchor="{anchor}">{escape(s)}</text>'
        )

    def arrow(self, *points, cls="edge"):
        d = "M " + " L ".join(f"{x} {y}" for x, y in points)
        self.parts.append(f'<path class="{cls}" d="{d}"/>')

    def save(self, name: str) -> None:
        body = "\n".join("  " + p for p in self.parts)
        (HERE / name).write_text(self.head + "\n" + body + "\n</svg>\n", encoding="utf-8")


def tokenization() -> None:
    f = Figure(
        860, 200, "From text to vectors",
        "Text is split into pieces, each piece becomes bytes, byte-level BPE merges them into "
        "tokens, each token is an id in a vocabulary of 50,257, and the model looks up a "
        "learned vector for each id and adds the vector of its position.",
    )  # fmt: skip
    steps = [
        ("text", ["' Every effort'"]),
        ("pre-tokenize", ["' Every'", "' effort'", "(spaces kept)"]),
        ("bytes", ["UTF-8, per piece:", "32 69 118 101", "114 121 | 32 ..."]),
        ("BPE merges", ["merge byte pairs", "by learned rank"]),
        ("token ids", ["[3887, 3626]", "(of 50,257)"]),
        ("embeddings", ["token vector", "+ position vector"]),
    ]
    x = 15
    for i, (title, lines) in enumerate(steps):
        f.box(x, 40, 128, 100, title, lines, cls="warm" if i == 0 else "box")
        if i:
            f.arrow((x - 12, 90), (x - 2, 90))
        x += 140
    f.text(15, 175, "mygpt.encode does the first four steps with GPT-2's own merges (chapter 1); "
           "the model's first layer does the last.")  # fmt: skip
    f.save("tokenization.svg")


def attention() -> None:
    f = Figure(
        860, 290, "Causal self-attention as a weighted sum",
        "Each position's query is compared with the keys of itself and the positions before "
        "it; the softmax of the scaled scores gives weights that sum to 1; the output is the "
        "weighted sum of those positions' values. Later positions are masked out.",
    )  # fmt: skip
    tokens = ["Every", "effort", "moves", "you"]
    weights = [[1.0], [0.35, 0.65], [0.2, 0.3, 0.5], [0.1, 0.2, 0.3, 0.4]]
    ox, oy, s = 120, 60, 46
    f.text(ox - 10, oy - 24, "weights softmax(q·k / √d) of each query (row) over the keys "
           "(illustrative numbers)", "title")  # fmt: skip
    for j, t in enumerate(tokens):
        f.text(ox + j * s + s / 2 - 4, oy - 6, t, "what", anchor="middle")
    for i, t in enumerate(tokens):
        f.text(ox - 12, oy + i * s + s / 2 + 2, t, "what", anchor="end")
    rows = [row + [None] * (4 - len(row)) for row in weights]  # None: masked, after the query
    _grid(f, ox, oy, s, rows, lambda w: "–" if w is None else f"{w:.2f}",
          masked=lambda i, j: j > i, shade=lambda w: w)  # fmt: skip
    f.text(ox, oy + 4 * s + 22, "each row sums to 1; – : masked, after the query", "what")
    bx = 440
    f.box(bx, 60, 400, 80, "the output of 'moves' (row 3)",
          ["0.20 · v(Every) + 0.30 · v(effort) + 0.50 · v(moves)",
           "a mix of the values it attends to"])  # fmt: skip
    f.box(bx, 160, 400, 80, "queries, keys and values",
          ["q, k, v = x W_q, x W_k, x W_v at every position;",
           "h heads do this in parallel on slices of width d / h"])  # fmt: skip
    f.arrow((ox + 4 * s + 10, oy + 2 * s + 20), (bx - 4, 100))
    f.save("attention.svg")


def gpt_stack() -> None:
    f = Figure(
        860, 250, "The GPT stack with shapes",
        "Token ids of shape B by T become embeddings of shape B by T by d (token plus position), "
        "pass through L transformer blocks, each pre-LayerNorm attention and feed-forward with "
        "residual connections, then a final LayerNorm and the output layer, tied to the token "
        "embedding, giving logits of shape B by T by V.",
    )  # fmt: skip
    y = 60
    items = [
        ("ids", ["[B, T]"], "warm", 90),
        ("embed", ["tok_emb[ids]", "+ pos_emb[0..T-1]", "[B, T, d]"], "box", 130),
        ("block × L", ["x + attn(ln1(x))", "x + mlp(ln2(x))", "[B, T, d]"], "box", 140),
        ("ln_f", ["LayerNorm", "[B, T, d]"], "box", 100),
        ("lm_head", ["h · W_teᵀ (tied)", "[B, T, V]"], "box", 130),
        ("logits", ["next-token", "scores"], "warm", 100),
    ]
    x = 20
    for i, (title, lines, cls, w) in enumerate(items):
        f.box(x, y, w, 100, title, lines, cls)
        if i:
            f.arrow((x - 20, y + 50), (x - 2, y + 50))
        x += w + 22
    f.arrow((404, 162), (404, 185), (290, 185), (290, 164))
    f.text(300, 200, "repeated L times; every block keeps the shape [B, T, d]")
    f.text(20, 238, "GPT-2 124M: d = 768, L = 12, 12 heads, V = 50,257, T ≤ 1,024; "
           "the book's model: d = 256, L = 4, 4 heads, T ≤ 256")  # fmt: skip
    f.save("gpt-stack.svg")


def hub_names() -> None:
    f = Figure(
        860, 220, "The Hub's names onto ours",
        "Tensor names of GPT-2 in the Hugging Face layout, such as h.0.attn.c_attn.weight, map "
        "one to one onto our parameter names, such as blocks.0.attn.qkv.weight; the four Conv1D "
        "weights of each block are stored in-by-out and are transposed; the causal-mask buffers "
        "are skipped; the output layer is the token embedding.",
    )  # fmt: skip
    rows = [
        ("wte.weight", "tok_emb.weight", "same"),
        ("h.{i}.attn.c_attn.weight [C, 3C]", "blocks.{i}.attn.qkv.weight [3C, C]", "transposed"),
        ("h.{i}.mlp.c_fc.weight [C, 4C]", "blocks.{i}.mlp.fc.weight [4C, C]", "transposed"),
        ("h.{i}.attn.bias (causal mask)", "(not a weight)", "skipped"),
        ("(absent: tied)", "lm_head.weight", "= tok_emb.weight"),
    ]
    f.text(30, 34, "Hub file (transformers' GPT2LMHeadModel)", "title")
    f.text(470, 34, "mygpt.GPT", "title")
    for i, (hub, ours, how) in enumerate(rows):
        y = 48 + i * 33
        f.cell(30, y, 300, 26, "", "warm" if how == "skipped" else "box")
        f.text(40, y + 17, hub, "code")
        f.cell(470, y, 300, 26, "", "grey" if how == "skipped" else "box")
        f.text(480, y + 17, ours, "code")
        f.arrow((332, y + 13), (468, y + 13), cls="dash" if how == "skipped" else "edge")
        f.text(400, y + 8, how, "what", anchor="middle")
    f.save("hub-names.svg")


def classifier() -> None:
    f = Figure(
        860, 210, "A classification head on the last token",
        "The message's token ids, padded on the right, go through the pretrained GPT to hidden "
        "states of shape B by T by d; the hidden state of each message's last real token goes "
        "through a new linear layer to two scores, ham and spam, trained with cross-entropy.",
    )  # fmt: skip
    toks = ["Win", " a", " free", " prize", "!", "pad", "pad"]
    for j, t in enumerate(toks):
        f.cell(20 + j * 62, 50, 56, 30, t, "grey" if t == "pad" else "box", "code")
    f.text(20, 40, "token ids, padded on the right", "title")
    f.box(20, 100, 430, 50, "pretrained GPT: gpt.hidden(ids)", ["hidden states [B, T, d]"])
    f.arrow((235, 82), (235, 98))
    f.cell(20 + 4 * 62, 160, 56, 30, "h_last", "dark", "white")
    f.arrow((20 + 4 * 62 + 28, 152), (20 + 4 * 62 + 28, 158))
    f.box(520, 60, 160, 90, "new head", ["nn.Linear(d, 2)", "the only new weights"], "warm")
    f.arrow((20 + 4 * 62 + 58, 175), (500, 175), (500, 105), (518, 105))
    f.box(715, 60, 125, 90, "2 scores", ["ham / spam", "cross-entropy", "with the label"])
    f.arrow((680, 105), (713, 105))
    f.text(520, 176, "the last real token has seen the whole")
    f.text(520, 192, "message (causal attention)")
    f.save("classifier-head.svg")


def instruction_mask() -> None:
    f = Figure(
        860, 200, "Which positions the instruction loss counts",
        "An Alpaca-style example is a prompt (instruction and input) followed by the response "
        "and an end-of-text token, padded to the batch's length. The targets are the tokens "
        "shifted by one; prompt and padding targets are set to -100, so the loss counts only "
        "the response and its end token.",
    )  # fmt: skip
    parts = [("prompt", 5, "grey"), ("answer", 4, "box"), ("<eot>", 1, "warm"), ("pad", 2, "grey")]
    x = 20
    f.text(20, 36, "inputs: prompt (instruction, input, '### Response:'), "
           "answer, end token, padding", "title")  # fmt: skip
    for label, n, cls in parts:
        for k in range(n):
            f.cell(x, 46, 58, 28, label if k == 0 or label == "pad" else "", cls, "code")
            x += 62
    f.text(20, 104, "targets (inputs shifted by one); -100 = not counted", "title")
    x = 20
    labels = ["-100"] * 4 + ["answer"] * 4 + ["<eot>"] + ["-100"] * 3
    for lab in labels:
        cls = "grey" if lab == "-100" else ("warm" if lab == "<eot>" else "dark")
        f.cell(x, 114, 58, 28, lab, cls, "white" if cls == "dark" else "code")
        x += 62
    f.text(20, 166, "the loss is the mean cross-entropy over the answer tokens and the end token:")
    f.text(20, 182, "the model learns to answer and to stop, not to predict the prompt")
    f.save("instruction-mask.svg")


def agent_loop() -> None:
    f = Figure(
        860, 220, "The agent loop",
        "The model reads the question and writes either a tool call or a final answer. A tool "
        "call is parsed and run by safe code, its result is appended to the text, and the model "
        "continues; a final answer ends the loop, as does a step limit.",
    )  # fmt: skip
    f.box(20, 60, 150, 80, "question", ["What is 17 * 23?"], "warm")
    f.box(210, 60, 170, 80, "model writes", ["a tool call, or", "the final answer"])
    f.box(420, 30, 190, 70, "tool call", ["parsed, checked, run:", "e.g. the calculator"])
    f.box(420, 120, 190, 70, "final answer", ["391", "ends the loop"], "warm")
    f.box(650, 30, 190, 70, "result appended", ["'Result: 391'", "to the text"])
    f.arrow((170, 100), (208, 100))
    f.arrow((380, 90), (418, 65))
    f.arrow((380, 110), (418, 155))
    f.arrow((610, 65), (648, 65))
    f.arrow((745, 100), (745, 200), (295, 200), (295, 142))
    f.text(470, 214, "the model continues with the result in its context", "what")
    f.save("agent-loop.svg")


def _grid(f, ox, oy, s, values, fmt, masked=lambda i, j: False, shade=None):
    """A square grid of numbers; masked cells grey, others shaded by ``shade(value)`` in [0, 1]."""
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            x, y = ox + j * s, oy + i * s
            if masked(i, j):
                f.cell(x, y, s - 4, s - 4, fmt(v), "grey", "what")
                continue
            w = shade(v) if shade else 0.0
            c = int(235 - 170 * w)
            f.parts.append(
                f'<rect x="{x}" y="{y}" width="{s - 4}" height="{s - 4}" rx="3" '
                f'fill="rgb({c},{c + 12},{min(255, c + 40)})" stroke="#2b6cb0" '
                f'stroke-width="0.8"/>'
            )
            f.text(x + s / 2 - 2, y + s / 2 + 2, fmt(v), "white" if w > 0.45 else "what",
                   anchor="middle")  # fmt: skip


def causal_mask() -> None:
    import math

    scores = [[0.9, 1.4, -0.3, 0.6], [0.2, 1.1, 0.8, -0.5],
              [-0.4, 0.5, 1.3, 0.9], [0.7, 0.1, 0.4, 1.2]]  # fmt: skip
    masked = [[v if j <= i else -math.inf for j, v in enumerate(row)]
              for i, row in enumerate(scores)]  # fmt: skip
    weights = []
    for row in masked:
        e = [math.exp(v) for v in row]
        weights.append([v / sum(e) for v in e])
    f = Figure(
        860, 300, "The causal mask: minus infinity before the softmax",
        "Three four by four grids. First the scaled scores of every query (row) with every key "
        "(column). Then the same scores with the entries above the diagonal, the keys after the "
        "query, replaced by minus infinity. Then the softmax of each row: the masked entries "
        "become exactly 0 and each row's remaining weights sum to 1; the first row puts all of "
        "its weight on the first token.",
    )  # fmt: skip
    s, oy = 44, 70
    panels = [
        ("scores s = q·k / √d", scores, lambda v: f"{v:.1f}", lambda i, j: False, None),
        ("mask: s = −∞ where j > i", masked,
         lambda v: "−∞" if v == -math.inf else f"{v:.1f}", lambda i, j: j > i, None),
        ("softmax of each row", weights, lambda v: f"{v:.2f}", lambda i, j: j > i,
         lambda v: v),
    ]  # fmt: skip
    for k, (title, values, fmt, is_masked, shade) in enumerate(panels):
        ox = 40 + k * 290
        f.text(ox - 10, oy - 30, title, "title")
        for j in range(4):
            f.text(ox + j * s + s / 2 - 2, oy - 8, f"k{j + 1}", "code", anchor="middle")
        for i in range(4):
            f.text(ox - 8, oy + i * s + s / 2 + 2, f"q{i + 1}", "code", anchor="end")
        _grid(f, ox, oy, s, values, fmt, is_masked, shade)
        if k:
            f.arrow((ox - 62, oy + 2 * s), (ox - 24, oy + 2 * s))
    f.text(40, oy + 4 * s + 26, "e^(−∞) = 0: a masked key gets exactly no weight, and the "
           "softmax's sum runs only over keys at or before the query.")  # fmt: skip
    f.text(40, oy + 4 * s + 44, "Illustrative scores; the weights are their softmax. "
           "Row q1 can only attend to itself: weight 1.")  # fmt: skip
    f.save("causal-mask.svg")


def heads() -> None:
    f = Figure(
        860, 300, "Queries, keys and values, split into heads",
        "A sequence of T vectors of width d goes through one linear layer that makes queries, "
        "keys and values, each T by d. Each is split along its width into h heads of width d "
        "over h. Every head computes its own causal attention weights, T by T, and its own "
        "weighted sum of values, T by d over h. The heads' outputs are concatenated back to T by "
        "d and mixed by the output projection.",
    )  # fmt: skip
    f.box(20, 110, 95, 70, "x", ["[T, d]"], "warm")
    f.box(140, 90, 120, 110, "qkv = x W", ["one Linear", "d → 3d", "then split"],
          code=["q, k, v [T, d]"])  # fmt: skip
    f.arrow((115, 145), (138, 145))
    colours = ["box", "box", "box"]
    for r, (y, label) in enumerate([(40, "head 1"), (125, "head 2"), (230, "head h")]):
        f.box(300, y, 330, 62 if r < 2 else 50, None, cls=colours[r])
        f.text(310, y + 18, label, "title")
        f.text(375, y + 18, "its own d/h columns of q, k and v")
        f.text(310, y + 38, "softmax(q kᵀ/√(d/h) + mask) v → [T, d/h]", "code")
        f.arrow((262, 145), (298, y + 25))
    f.text(460, 212, "⋮", "title", anchor="middle")
    f.box(665, 110, 80, 70, "concat", ["[T, d]"])
    for y in (71, 156, 255):
        f.arrow((632, y), (663, 145))
    f.box(770, 110, 75, 70, "W_o", ["Linear", "[T, d]"], "warm")
    f.arrow((745, 145), (768, 145))
    f.text(20, 290, "GPT-2 124M: d = 768, h = 12 heads of 64; one matrix multiplication "
           "makes all heads' q, k, v, and the heads run as one batched product.")  # fmt: skip
    f.save("heads.svg")


def block() -> None:
    f = Figure(
        860, 360, "A transformer block: pre-LN (GPT-2) and post-LN (the original)",
        "Two diagrams side by side. Left, GPT-2's pre-LN block: the residual stream x passes "
        "straight through; a LayerNorm feeds causal self-attention, whose output is added to the "
        "stream; a second LayerNorm feeds the feed-forward network (a linear layer to 4d, GELU, "
        "a linear layer back to d), whose output is added again. Right, the original post-LN "
        "block: attention and feed-forward take the stream directly, and a LayerNorm follows each "
        "addition, so the stream itself is normalised twice per block.",
    )  # fmt: skip

    def column(x0, title, pre):
        f.text(x0, 30, title, "title")
        sx, dy = x0 + 60, 25  # the residual stream's vertical line; everything below the title
        f.box(x0, 270 + dy, 120, 34, None, cls="warm")
        f.text(x0 + 60, 292 + dy, "x  [T, d]", "code", anchor="middle")
        for y, ln, name, what in ((200 + dy, "LN₁", "attention", "causal, h heads"),
                                  (90 + dy, "LN₂", "FFN", "d→4d, GELU, 4d→d")):  # fmt: skip
            f.parts.append(f'<circle cx="{sx}" cy="{y - 20}" r="11" class="box"/>')
            f.text(sx, y - 15, "+", "title", anchor="middle")
            bx = x0 + 150
            if pre:  # the sub-layer reads a normalised copy; the stream is left alone
                f.box(bx, y + 8, 70, 30, None)
                f.text(bx + 35, y + 28, ln, "what", anchor="middle")
                f.arrow((sx, y + 23), (bx - 2, y + 23))
                f.box(bx + 95, y - 12, 150, 50, name, [what])
                f.arrow((bx + 70, y + 23), (bx + 93, y + 13))
                f.arrow((bx + 170, y - 14), (bx + 170, y - 20), (sx + 13, y - 20))
            else:  # the sub-layer reads the stream; the sum is normalised
                f.box(bx + 20, y - 12, 150, 50, name, [what])
                f.arrow((sx, y + 23), (bx + 18, y + 23))
                f.arrow((bx + 95, y - 14), (bx + 95, y - 20), (sx + 13, y - 20))
                f.box(sx - 30, y - 72, 60, 24, None, cls="warm")
                f.text(sx, y - 55, ln, "what", anchor="middle")
        f.arrow((sx, 268 + dy), (sx, 191 + dy))  # the stream, from x up through both additions
        if pre:
            f.arrow((sx, 169 + dy), (sx, 81 + dy))
            f.arrow((sx, 59 + dy), (sx, 42 + dy))
        else:
            f.arrow((sx, 169 + dy), (sx, 155 + dy))
            f.arrow((sx, 128 + dy), (sx, 81 + dy))
            f.arrow((sx, 59 + dy), (sx, 45 + dy))

    column(20, "pre-LN (GPT-2): x + Sublayer(LN(x))", True)
    column(450, "post-LN (original): LN(x + Sublayer(x))", False)
    f.text(20, 350, "In pre-LN the stream from x to the top is a plain sum, never normalised "
           "inside the block; GPT-2 adds one final LayerNorm after the last block.")  # fmt: skip
    f.save("block.svg")


def sampling_filters() -> None:
    # The package's own filters draw the bars, so the figure shows what the code does.
    import torch

    from mygpt.generation import apply_temperature, top_k_filter, top_p_filter

    tokens = [" the", " a", " his", " my", " this", " one", " no", " that", " her", " our"]
    logits = torch.tensor([3.0, 2.4, 1.9, 1.5, 1.2, 0.8, 0.5, 0.2, -0.1, -0.4])
    panels = [
        ("T = 1: as the model says", logits),
        ("T = 0.5: sharper", apply_temperature(logits, 0.5)),
        ("T = 2: flatter", apply_temperature(logits, 2.0)),
        ("top-k, k = 3", top_k_filter(logits, 3)),
        ("top-p, p = 0.8", top_p_filter(logits, 0.8)),
    ]
    f = Figure(
        860, 290, "Temperature, top-k and top-p on one distribution",
        "Five bar charts of the probabilities of the same ten candidate next tokens. Temperature "
        "0.5 makes the largest bar larger and the tail smaller; temperature 2 flattens them. "
        "Top-k with k = 3 keeps the three largest bars and renormalises them; top-p with p = 0.8 "
        "keeps the smallest set of largest bars whose probabilities reach 0.8. Removed tokens "
        "have probability 0, drawn as empty outlines.",
    )  # fmt: skip
    w, gap, top, height = 150, 22, 60, 150
    for k, (title, filtered) in enumerate(panels):
        ox = 20 + k * (w + gap)
        shown = torch.softmax(filtered, dim=-1).tolist()  # renormalised over the kept tokens
        kept = torch.isfinite(filtered).tolist()
        f.text(ox, top - 26, title, "what")
        f.parts.append(f'<line x1="{ox}" y1="{top + height}" x2="{ox + w}" '
                       f'y2="{top + height}" stroke="#555" stroke-width="1"/>')  # fmt: skip
        bw = w / 10
        for i, (p, keep) in enumerate(zip(shown, kept)):
            x = ox + i * bw + 1
            if keep:
                h = height * p / 0.8  # every panel on the same scale: full height = 0.8
                f.parts.append(f'<rect class="dark" x="{x:.1f}" y="{top + height - h:.1f}" '
                               f'width="{bw - 3:.1f}" height="{h:.1f}"/>')  # fmt: skip
            else:
                f.parts.append(f'<rect class="grey" x="{x:.1f}" y="{top + height - 12}" '
                               f'width="{bw - 3:.1f}" height="12"/>')  # fmt: skip
        f.text(ox, top + height + 18, f"largest: {max(shown):.2f}", "code")
        f.text(ox, top + height + 34, f"kept: {sum(kept)} of 10", "code")
    f.text(20, 272, "ten candidates: " + ",".join(tokens) + "  (illustrative logits; "
           "bars after renormalising, empty boxes = probability 0)")  # fmt: skip
    f.save("sampling-filters.svg")


#: Every figure this script draws, in the book's order.
DRAWINGS = (tokenization, attention, causal_mask, heads, block, gpt_stack, hub_names,
            sampling_filters, classifier, instruction_mask, agent_loop)  # fmt: skip

if __name__ == "__main__":
    for draw in DRAWINGS:
        draw()
    print("written:", ", ".join(sorted(p.name for p in HERE.glob("*.svg"))))
