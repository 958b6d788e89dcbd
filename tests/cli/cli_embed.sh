#!/usr/bin/env bash
# llmrt embed: a BERT classifier checkpoint (tests/cli/data/bert_reference.py)
# reproduces the reference's [CLS] hidden row, pooled vector and logits with
# token types; mean pooling is the mean of the rows; then the refusals: a
# decoder engine, bad options, ids and token types, and generation asked of
# an encoder.
# usage: cli_embed.sh LLMRT SOURCE_DIR
set -u
llmrt=$1 src=$2
source "$(dirname "$0")/cli_lib.sh"

python3 "$src/tests/cli/data/bert_reference.py" "$tmp/bert_cls" BertForSequenceClassification || { echo "FAIL: reference"; exit 1; }
expect 0 "" -- "$llmrt" build --model "$tmp/bert_cls" --output "$tmp/cls.engine" --quiet
e=$tmp/cls.engine
read -r ids types < <(python3 -c "
import json; p = json.load(open('$tmp/bert_cls/golden.json'))['prompts'][1]
print(','.join(map(str, p['ids'])), ','.join(map(str, p['token_type_ids'])))")
"$llmrt" embed --engine "$e" --ids "$ids" --token-types "$types" --json >"$tmp/out.json" && ok || bad "embed: $(cat "$tmp/out.json")"
"$llmrt" embed --engine "$e" --ids "$ids" --token-types "$types" --pooling mean --json >"$tmp/mean.json" && ok || bad "embed --pooling mean"
python3 - "$tmp/out.json" "$tmp/mean.json" "$tmp/bert_cls/golden.json" <<'PY' && ok || bad "embed differs from the reference"
import json, math, sys
got, mean, ref = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))["prompts"][1]
def rel(a, b): return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)) / sum(y * y for y in b))
n, rows = got["num_tokens"], ref["hidden"]
assert n == len(ref["ids"]) and len(got["embedding"]) == len(rows[0])
assert rel(got["embedding"], rows[0]) < 1e-4, rel(got["embedding"], rows[0])
assert rel(got["pooled"], ref["pooled"]) < 1e-4 and rel(got["logits"], ref["logits"]) < 1e-4
want = [sum(r[i] for r in rows) / n for i in range(len(rows[0]))]
assert rel(mean["embedding"], want) < 1e-4 and mean["pooling"] == "mean"
PY
# --text through the engine's WordPiece tokenizer: [CLS] hello , world ! [SEP]
python3 - "$tmp/bert_cls/tokenizer.json" <<'PY'
import json, sys
vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "hello": 5, ",": 6, "world": 7, "!": 8, "##s": 9}
special = [{"id": i, "content": t, "special": True, "normalized": False, "single_word": False, "lstrip": False,
            "rstrip": False} for t, i in vocab.items() if t.startswith("[")]
json.dump({"version": "1.0", "truncation": None, "padding": None, "added_tokens": special,
           "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                          "strip_accents": None, "lowercase": True},
           "pre_tokenizer": {"type": "BertPreTokenizer"},
           "post_processor": {"type": "TemplateProcessing",
               "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                          {"SpecialToken": {"id": "[SEP]", "type_id": 0}}], "pair": [],
               "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                                  "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
           "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
           "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                     "max_input_chars_per_word": 100, "vocab": vocab}}, open(sys.argv[1], "w"))
PY
expect 0 "" -- "$llmrt" build --model "$tmp/bert_cls" --output "$tmp/tok.engine" --quiet
expect 0 "2,5,6,7,9,8,3" -- "$llmrt" tokenize --tokenizer "$tmp/tok.engine" --text "Hello, worlds!"
"$llmrt" embed --engine "$tmp/tok.engine" --text "Hello, worlds!" --json >"$tmp/text.json" && ok || bad "embed --text"
"$llmrt" embed --engine "$tmp/tok.engine" --ids 2,5,6,7,9,8,3 --json >"$tmp/ids.json" && ok || bad "embed --ids"
cmp -s "$tmp/text.json" "$tmp/ids.json" && ok || bad "embed --text differs from the same ids"

# plain output: embedding, pooled, logits lines
[ "$("$llmrt" embed --engine "$e" --ids 5,6,7 | wc -l)" = 3 ] && ok || bad "plain output is not three lines"

# refusals
expect 0 "" -- "$llmrt" build --config "$src/tests/golden/cases/llama_f32/config.json" --random-weights --output "$tmp/llama.engine" --max-seq-len 64 --quiet
expect 1 "is a decoder engine" -- "$llmrt" embed --engine "$tmp/llama.engine" --ids 1,2
expect 1 "is an encoder" -- "$llmrt" run --engine "$e" --prompt-ids 1,2 --max-tokens 2
expect 1 "no tokenizer" -- "$llmrt" embed --engine "$e" --text "hello"
expect 2 "exactly one of --text and --ids" -- "$llmrt" embed --engine "$e"
expect 2 "exactly one of --text and --ids" -- "$llmrt" embed --engine "$e" --ids 1 --text x
expect 2 "--engine is required" -- "$llmrt" embed --ids 1
expect 2 "--pooling must be cls or mean" -- "$llmrt" embed --engine "$e" --ids 1 --pooling max
expect 2 "--token-types has 1 ids for 2 tokens" -- "$llmrt" embed --engine "$e" --ids 1,2 --token-types 0
expect 1 "token_type_ids[1] = 2 is outside [0, 2)" -- "$llmrt" embed --engine "$e" --ids 1,2 --token-types 0,2
expect 1 "outside the vocabulary" -- "$llmrt" embed --engine "$e" --ids 1,500
expect 1 "at most 64" -- "$llmrt" embed --engine "$e" --ids "$(seq -s, 1 65)"
expect 2 "not a comma-separated list" -- "$llmrt" embed --engine "$e" --ids 1,x
expect 2 "unknown option" -- "$llmrt" embed --engine "$e" --ids 1 --frobnicate
expect 0 "usage: llmrt embed" -- "$llmrt" embed --help
cli_finish
