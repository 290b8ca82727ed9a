"""Grammar engines for the decoder's free values: xgrammar (what the decoder uses), llguidance, outlines-core.

    .venv/bin/python benchmarks/bench_grammar.py            # the tiny test model and SmolLM2's tokenizer
    .venv/bin/python benchmarks/bench_grammar.py --no-smollm2
    .venv/bin/python benchmarks/bench_grammar.py --suite-only

1. Per engine and tokenizer: seconds to compile a string schema, and milliseconds per token mask while walking
   a string with CJK text (whether every byte piece of it is allowed).
2. Over the suite's schemas (every library tool, Plan, Verdict) on the tiny random model, greedy and sampled:
   validity of the answers and seconds per call.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = '"日本の夏 summer sale"'


def engines(tokenizer, vocab_size: int) -> dict:
    """Compile seconds and mask milliseconds per token of each engine, walking TEXT as a JSON string."""
    schema = {"type": "string", "maxLength": 60}
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    out: dict = {}
    try:
        import xgrammar as xgr

        start = time.perf_counter()
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        matcher = xgr.GrammarMatcher(xgr.GrammarCompiler(info).compile_json_schema(json.dumps(schema)))
        compiled = time.perf_counter() - start
        bitmask = xgr.allocate_token_bitmask(1, vocab_size)
        start, ok = time.perf_counter(), True
        for token in ids:
            matcher.fill_next_token_bitmask(bitmask)
            ok &= matcher.accept_token(token)
        out["xgrammar"] = _row(compiled, start, ids, ok)
    except Exception as error:  # an engine that fails is a result too
        out["xgrammar"] = {"error": repr(error)[:200]}
    try:
        import llguidance
        import llguidance.hf
        import llguidance.torch as lt

        start = time.perf_counter()
        lltok = llguidance.hf.from_tokenizer(tokenizer)
        matcher = llguidance.LLMatcher(lltok, llguidance.LLMatcher.grammar_from_json_schema(schema))
        compiled = time.perf_counter() - start
        bitmask = lt.allocate_token_bitmask(1, lltok.vocab_size)
        start, ok = time.perf_counter(), True
        for token in ids:
            lt.fill_next_token_bitmask(matcher, bitmask, 0)
            ok &= matcher.consume_token(token)
        out["llguidance"] = _row(compiled, start, ids, ok)
    except Exception as error:
        out["llguidance"] = {"error": repr(error)[:200]}
    out["outlines_core"] = _outlines_core(tokenizer, schema, ids)
    return out


def _outlines_core(tokenizer, schema: dict, ids: list[int], limit_s: float = 60.0) -> dict:
    """outlines-core in a child process: its index of a bounded string can take minutes to build."""
    import multiprocessing

    queue = multiprocessing.get_context("fork").Queue()

    def work() -> None:
        from outlines_core import Guide, Index, Vocabulary
        from outlines_core.json_schema import build_regex_from_schema

        start = time.perf_counter()
        eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
        vocab: dict = {}
        for token, i in tokenizer.get_vocab().items():
            if i != eos:
                vocab.setdefault(token, []).append(i)
        guide = Guide(Index(build_regex_from_schema(json.dumps(schema)), Vocabulary(eos, vocab)))
        compiled = time.perf_counter() - start
        start, ok = time.perf_counter(), True
        for token in ids:
            ok &= token in guide.get_tokens()
            guide.advance(token)
        queue.put(_row(compiled, start, ids, ok))

    child = multiprocessing.get_context("fork").Process(target=work)
    child.start()
    child.join(limit_s)
    if child.is_alive():
        child.kill()
        return {"error": f"the index of {json.dumps(schema)} was not built within {limit_s:g} s"}
    return queue.get() if not queue.empty() else {"error": f"exit code {child.exitcode}"}


def _row(compiled: float, start: float, ids: list[int], ok: bool) -> dict:
    return {
        "compile_s": round(compiled, 3),
        "mask_ms_per_token": round((time.perf_counter() - start) / len(ids) * 1000, 3),
        "cjk_bytes_allowed": bool(ok),
    }


def suite() -> dict:
    """Validity and seconds per call over the suite's schemas on the tiny random model, greedy and sampled.

    (pixplan's own string masks, which xgrammar's replaced, agreed with it on 0/39 of these calls on the tiny
    random model: its free strings differ from the first token where xgrammar allows a piece the own masks
    did not; see the README's local-model section.)"""
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_lm import tiny_local_model

    from pixplan.graph.schemas import Plan, Verdict
    from pixplan.tools import TOOLS

    regions = {"region": ["r1", "r2", "whole", "background"]}
    cases = []
    for seed in range(3):
        for tool in TOOLS:
            cases.append(("tool", tool, seed))
        cases += [("structured", Plan, seed), ("structured", Verdict, seed)]
    model = tiny_local_model(max_string_chars=40)
    valid, seconds, invalid = 0, [], []
    for kind, target, seed in cases:
        temperature = 0.0 if seed == 0 else 1.0
        start = time.perf_counter()
        try:
            if kind == "tool":
                message = model.bind_tools([target], choices=regions).invoke(
                    f"Step s1: use {target.name}.", temperature=temperature, seed=seed
                )
                target.tool_call_schema.model_validate(message.tool_calls[0]["args"])
            else:
                model.with_structured_output(target).invoke("Fill it in.", temperature=temperature, seed=seed)
            valid += 1
        except Exception as error:  # an invalid answer is a figure, not a crash
            invalid.append(f"{kind}:{_name(target)}:{seed}: {str(error).splitlines()[0][:120]}")
        seconds.append(time.perf_counter() - start)
    return {
        "calls": len(cases),
        "valid": valid,
        "seconds_per_call": round(sum(seconds) / len(seconds), 3),
        "invalid": invalid[:8],
    }


def _name(target) -> str:
    return target.name if hasattr(target, "name") else target.__name__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-smollm2", action="store_true", help="skip SmolLM2's tokenizer")
    parser.add_argument("--suite-only", action="store_true", help="only part 2 (the suite's schemas)")
    args = parser.parse_args()
    if args.suite_only:
        print(json.dumps({"suite_tiny_model": suite()}, indent=1, ensure_ascii=False))
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_lm import tiny_tokenizer

    tiny = tiny_tokenizer()
    figures = {"engines_tiny_tokenizer": engines(tiny, len(tiny))}
    if not args.no_smollm2:
        from transformers import AutoTokenizer

        from pixplan.graph.models import smollm2_dir

        tokenizer = AutoTokenizer.from_pretrained(str(smollm2_dir()))
        figures["engines_smollm2_tokenizer"] = engines(tokenizer, len(tokenizer))
    print(json.dumps(figures), flush=True)
    figures["suite_tiny_model"] = suite()
    print(json.dumps(figures, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
